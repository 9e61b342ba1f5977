{{
    config(
        materialized='incremental',
        unique_key='session_id',
        incremental_strategy='merge_by_date',
        meta={'merge_date_column': 'session_date', 'merge_date_pad_days': 1},
        on_schema_change='fail',
        indexes=[
            {'columns': ['session_date']},
            {'columns': ['updated_at']},
        ],
    )
}}

{%- if is_incremental() %}
{%- set changes = upstream_changes(ref('int_events_sessionized')) %}
{%- endif %}

with

{% if is_incremental() -%}
changed_sessions as (

    -- sessions with rows the sessionisation (re)wrote since this model's run
    select distinct
        session_id,
        session_started_at
    from {{ ref('int_events_sessionized') }}
    where
        {{ date_in('event_date', changes.dates) }}
        and {{ changed_since('sessionized_at', changes.watermark) }}

),

{% endif -%}

events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() -%}
    -- every row of those sessions: they all carry the session's start, so an
    -- index range from the earliest start reads little beyond the new data
    where
        session_started_at >= (
            select min(changed_sessions.session_started_at) as earliest_start
            from changed_sessions
        )
        and session_id in (
            select changed_sessions.session_id from changed_sessions
        )
    {%- endif %}

),

user_agents as (

    select * from {{ ref('int_user_agents_parsed') }}

),

sessions as (

    select
        session_id,
        min(user_id) as user_id,
        min(event_timestamp) as session_started_at,
        max(event_timestamp) as session_ended_at,
        count(*) as events,
        count(*) filter (where event_type = 'page_view') as page_views,
        count(*) filter (where event_type = 'add_to_cart') as add_to_carts,
        count(*) filter (
            where event_type = 'remove_from_cart'
        ) as remove_from_carts,
        count(*) filter (where event_type = 'wishlist_add') as wishlist_adds,
        count(*) filter (where event_type = 'purchase') as purchases,
        coalesce(
            sum(quantity) filter (where event_type = 'purchase'), 0
        ) as units_purchased,
        coalesce(
            sum(price * quantity) filter (where event_type = 'purchase'), 0
        ) as revenue,
        bool_or(is_returning_user) as is_returning_user,
        (array_agg(user_agent order by session_sequence_number))[1]
            as landing_user_agent,
        (array_agg(page_url order by session_sequence_number))[1]
            as landing_page_url

    from events
    group by session_id

),

final as (

    select
        sessions.session_id,
        sessions.user_id,
        (sessions.session_started_at at time zone 'UTC')::date
            as session_date,
        sessions.session_started_at,
        sessions.session_ended_at,
        extract(
            epoch from sessions.session_ended_at - sessions.session_started_at
        )::numeric(12, 3) as duration_seconds,
        sessions.events,
        sessions.page_views,
        sessions.add_to_carts,
        sessions.remove_from_carts,
        sessions.wishlist_adds,
        sessions.purchases,
        sessions.units_purchased,
        sessions.revenue::numeric(14, 2) as revenue,
        sessions.purchases > 0 as is_converted,
        case
            when sessions.purchases > 0 then 'purchase'
            when sessions.add_to_carts + sessions.remove_from_carts > 0
                then 'add_to_cart'
            when sessions.wishlist_adds > 0 then 'wishlist_add'
            else 'page_view'
        end as furthest_funnel_step,
        case
            when sessions.purchases > 0 then 4
            when sessions.add_to_carts + sessions.remove_from_carts > 0 then 3
            when sessions.wishlist_adds > 0 then 2
            else 1
        end as funnel_step_number,
        sessions.landing_page_url,
        coalesce(user_agents.device_type, 'other') as device_type,
        coalesce(user_agents.browser, 'Other') as browser,
        coalesce(user_agents.os, 'Other') as os,
        sessions.is_returning_user,
        now() as updated_at

    from sessions
    left join user_agents
        on md5(sessions.landing_user_agent) = user_agents.user_agent_hash

)

select * from final
{% if is_incremental() -%}
-- merged in primary-key order: the key's index insertions stay local
order by session_id
{%- endif %}
