{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='merge_by_date',
        meta={'merge_date_column': 'event_date'},
        on_schema_change='fail',
        indexes=[
            {'columns': ['event_date']},
            {'columns': ['processed_at']},
        ],
    )
}}

{%- set tz = var('reporting_timezone') %}
{%- if is_incremental() %}
    {%- set changes = upstream_changes(
        ref('int_events_sessionized'), own_ts='processed_at'
    ) %}
{%- endif %}

with

-- read twice (rows, distinct user agents): not materialized, so a full build
-- does not spool every event to a temporary file first
events as not materialized (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() -%}
    where
        {{ date_in('event_date', changes.dates) }}
        and {{ changed_since('sessionized_at', changes.watermark) }}
    {%- endif %}

),

agents as (

    select distinct user_agent
    from events
    where user_agent is not null

),

user_agents as (

    -- parsed here, once per distinct user agent of these rows, with the macro
    -- int_user_agents_parsed uses: waiting for that model would put it on
    -- this mart's critical path in every incremental run
    select
        user_agent,
        {{ user_agent_columns('user_agent') }}
    from agents

),

enriched as (

    select
        events.event_id,
        events.user_id,
        events.session_id,
        events.event_type,
        events.event_timestamp,
        events.event_date,
        (events.event_timestamp at time zone '{{ tz }}')::date
            as event_local_date,
        extract(
            hour from events.event_timestamp at time zone '{{ tz }}'
        )::integer as event_local_hour,
        extract(
            isodow from events.event_timestamp at time zone '{{ tz }}'
        )::integer as event_local_day_of_week,
        trim(
            to_char(events.event_timestamp at time zone '{{ tz }}', 'Day')
        ) as event_local_day_name,
        events.product_id,
        events.category,
        events.price,
        events.quantity,
        (
            case
                when events.event_type = 'purchase'
                    then events.price * events.quantity
                else 0
            end
        )::numeric(14, 2) as revenue,
        events.page_url,
        case
            when events.page_url ~* '^https?://[^/]+/?([?#].*)?$' then 'home'
            when events.page_url ~* '^https?://[^/]+/(p|product|products)/'
                then 'product'
            when events.page_url ~* '^https?://[^/]+/(c|category|categories)/'
                then 'category'
            when events.page_url ~* '^https?://[^/]+/search' then 'search'
            when events.page_url ~* '^https?://[^/]+/cart' then 'cart'
            when events.page_url ~* '^https?://[^/]+/checkout' then 'checkout'
            when events.page_url ~* '^https?://[^/]+/wishlist' then 'wishlist'
            else 'other'
        end as page_type,
        coalesce(user_agents.device_type, 'other') as device_type,
        coalesce(user_agents.browser, 'Other') as browser,
        coalesce(user_agents.os, 'Other') as os,
        events.ip_network,
        events.session_sequence_number,
        events.session_started_at,
        events.is_returning_user,
        events.ingested_at,
        now() as processed_at

    from events
    left join user_agents
        on events.user_agent = user_agents.user_agent

)

select * from enriched
{% if is_incremental() -%}
-- merged in primary-key order: the key's index insertions stay local
order by event_id
{%- endif %}
