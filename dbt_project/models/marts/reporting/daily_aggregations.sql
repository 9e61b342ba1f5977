{{
    config(
        materialized='incremental',
        unique_key='date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['date']}, {'columns': ['updated_at']}],
    )
}}

{#- Rebuilds whole days: each changed event date is deleted and re-inserted -#}
{%- if is_incremental() %}
{%- set changes = upstream_changes(ref('int_events_sessionized')) %}
{%- endif %}

with

events as (

    select
        event_date,
        -- never null in the grain: NULLs are distinct in a unique key
        coalesce(category, '(none)') as category,
        event_type,
        user_id,
        session_id,
        product_id,
        quantity,
        case
            when event_type = 'purchase' then price * quantity else 0
        end as revenue

    from {{ ref('int_events_sessionized') }}
    {% if is_incremental() -%}
    where {{ date_in('event_date', changes.dates) }}
    {%- endif %}

),

grain_totals as (

    select
        md5(event_date::text || '|' || category || '|' || event_type)::uuid
            as id,
        event_date,
        category,
        event_type,
        count(*) as total_events,
        sum(revenue) as total_revenue,
        count(distinct user_id) as unique_users,
        count(distinct session_id) as unique_sessions

    from events
    group by event_date, category, event_type

),

grain_sessions as (

    select distinct
        event_date,
        category,
        event_type,
        session_id
    from events

),

orders as (

    -- an order is one session's purchases on that date in that category;
    -- category '(none)' (pages without a product) counts orders of any category
    select distinct
        event_date,
        category,
        session_id
    from events
    where event_type = 'purchase'

    union

    select distinct
        event_date,
        '(none)' as category,
        session_id
    from events
    where event_type = 'purchase'

),

conversions as (

    select
        grain_sessions.event_date,
        grain_sessions.category,
        grain_sessions.event_type,
        count(*) as sessions,
        count(orders.session_id) as converted_sessions

    from grain_sessions
    left join orders
        on
            grain_sessions.event_date = orders.event_date
            and grain_sessions.category = orders.category
            and grain_sessions.session_id = orders.session_id
    group by
        grain_sessions.event_date,
        grain_sessions.category,
        grain_sessions.event_type

),

order_totals as (

    select
        event_date,
        category,
        count(distinct session_id) as orders,
        sum(revenue) as revenue

    from events
    where event_type = 'purchase'
    group by event_date, category

),

product_totals as (

    select
        event_date,
        category,
        event_type,
        product_id,
        count(*) as events,
        coalesce(sum(quantity), 0) as units,
        sum(revenue) as revenue

    from events
    where product_id is not null
    group by event_date, category, event_type, product_id

),

ranked_products as (

    select
        *,
        row_number() over (
            partition by event_date, category, event_type
            order by
                case
                    when event_type = 'purchase' then revenue
                end desc nulls last,
                events desc,
                product_id asc
        ) as product_rank

    from product_totals

),

top_products as (

    select
        event_date,
        category,
        event_type,
        jsonb_agg(
            jsonb_build_object(
                'product_id', product_id,
                'events', events,
                'units', units,
                'revenue', revenue
            )
            order by product_rank
        ) as top_products

    from ranked_products
    where product_rank <= {{ var('top_products_limit') }}
    group by event_date, category, event_type

),

{% if is_incremental() -%}
existing as (

    select
        id,
        created_at
    from {{ this }}
    where {{ date_in('date', changes.dates) }}

),

{% endif -%}

final as (

    select
        grain_totals.id,
        grain_totals.event_date as date,
        grain_totals.category::varchar(100) as category,
        grain_totals.event_type::varchar(50) as event_type,
        grain_totals.total_events,
        grain_totals.total_revenue::numeric(15, 2) as total_revenue,
        grain_totals.unique_users,
        grain_totals.unique_sessions,
        (
            conversions.converted_sessions::numeric / conversions.sessions
        )::numeric(5, 4) as conversion_rate,
        (
            case
                when grain_totals.event_type = 'purchase'
                    then order_totals.revenue / order_totals.orders
            end
        )::numeric(10, 2) as avg_order_value,
        coalesce(top_products.top_products, '[]'::jsonb) as top_products,
        {% if is_incremental() -%}
        coalesce(existing.created_at, now())
        {%- else -%}
        now()
        {%- endif %} as created_at,
        now() as updated_at

    from grain_totals
    inner join conversions
        on
            grain_totals.event_date = conversions.event_date
            and grain_totals.category = conversions.category
            and grain_totals.event_type = conversions.event_type
    left join order_totals
        on
            grain_totals.event_date = order_totals.event_date
            and grain_totals.category = order_totals.category
    left join top_products
        on
            grain_totals.event_date = top_products.event_date
            and grain_totals.category = top_products.category
            and grain_totals.event_type = top_products.event_type
    {% if is_incremental() -%}
    left join existing
        on grain_totals.id = existing.id
    {%- endif %}

)

select * from final
