{{
    config(
        materialized='incremental',
        unique_key='event_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['event_date']}, {'columns': ['updated_at']}],
    )
}}

{#- Rebuilds whole days: each changed event date is deleted and re-inserted -#}
{%- if is_incremental() %}
{%- set changes = upstream_changes(ref('int_events_sessionized')) %}
{%- endif %}

with

events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() -%}
    where
        product_id is not null
        and {{ date_in('event_date', changes.dates) }}
    {%- else -%}
    where product_id is not null
    {%- endif %}

),

product_days as (

    select
        event_date,
        product_id,
        max(category) as category,
        count(*) filter (where event_type = 'page_view') as page_views,
        count(*) filter (where event_type = 'add_to_cart') as cart_adds,
        coalesce(
            sum(quantity) filter (where event_type = 'add_to_cart'), 0
        ) as units_added_to_cart,
        count(*) filter (where event_type = 'remove_from_cart') as cart_removes,
        count(*) filter (where event_type = 'wishlist_add') as wishlist_adds,
        count(*) filter (where event_type = 'purchase') as purchases,
        coalesce(
            sum(quantity) filter (where event_type = 'purchase'), 0
        ) as units_sold,
        coalesce(
            sum(price * quantity) filter (where event_type = 'purchase'), 0
        ) as revenue

    from events
    group by event_date, product_id

),

session_products as (

    -- what each session did with each product that day
    select
        event_date,
        product_id,
        session_id,
        bool_or(event_type = 'page_view') as viewed,
        bool_or(event_type = 'add_to_cart') as carted,
        bool_or(event_type = 'purchase') as purchased

    from events
    group by event_date, product_id, session_id

),

session_funnel as (

    select
        event_date,
        product_id,
        count(*) filter (where viewed) as view_sessions,
        count(*) filter (where viewed and purchased) as view_purchase_sessions,
        count(*) filter (where carted) as cart_sessions,
        count(*) filter (where carted and purchased) as cart_purchase_sessions,
        count(*) filter (where purchased) as purchase_sessions

    from session_products
    group by event_date, product_id

),

final as (

    select
        product_days.event_date,
        product_days.product_id,
        product_days.category,
        product_days.page_views,
        product_days.cart_adds,
        product_days.units_added_to_cart,
        product_days.cart_removes,
        product_days.wishlist_adds,
        product_days.purchases,
        product_days.units_sold,
        product_days.revenue::numeric(14, 2) as revenue,
        session_funnel.view_sessions,
        session_funnel.cart_sessions,
        session_funnel.purchase_sessions,
        (
            session_funnel.view_purchase_sessions::numeric
            / nullif(session_funnel.view_sessions, 0)
        )::numeric(5, 4) as view_to_purchase_rate,
        (
            session_funnel.cart_purchase_sessions::numeric
            / nullif(session_funnel.cart_sessions, 0)
        )::numeric(5, 4) as cart_to_purchase_rate,
        -- the complement of the rounded rate, so the two always add up to 1
        (
            1 - (
                session_funnel.cart_purchase_sessions::numeric
                / nullif(session_funnel.cart_sessions, 0)
            )::numeric(5, 4)
        )::numeric(5, 4) as cart_abandonment_rate,
        now() as updated_at

    from product_days
    inner join session_funnel
        on
            product_days.event_date = session_funnel.event_date
            and product_days.product_id = session_funnel.product_id

)

select * from final
