{{
    config(
        materialized='incremental',
        unique_key='user_agent_hash',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[{'columns': ['user_agent_hash'], 'unique': True}],
    )
}}

{%- if is_incremental() %}
{%- set changes = upstream_changes(ref('int_events_sessionized')) %}
{%- endif %}

with

events as (

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

parsed as (

    select
        md5(user_agent) as user_agent_hash,
        user_agent,

        {{ user_agent_columns('user_agent') }}

    from agents

),

final as (

    select
        *,
        now() as updated_at
    from parsed

)

select * from final
