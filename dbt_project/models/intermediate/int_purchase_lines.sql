{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[
            {'columns': ['event_id'], 'unique': True},
            {'columns': ['order_id']},
        ],
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
        event_type = 'purchase'
        and {{ date_in('event_date', changes.dates) }}
        and {{ changed_since('sessionized_at', changes.watermark) }}
    {%- else -%}
    where event_type = 'purchase'
    {%- endif %}

),

lines as (

    select
        event_id,
        -- one checkout per session: a session's purchases are one order
        session_id as order_id,
        user_id,
        event_timestamp as purchased_at,
        event_date as order_date,
        product_id,
        category,
        price as unit_price,
        quantity,
        price * quantity as line_revenue,
        now() as updated_at

    from events

)

select * from lines
