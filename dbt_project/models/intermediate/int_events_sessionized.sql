{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[
            {'columns': ['event_id'], 'unique': True},
            {'columns': ['event_date']},
            {'columns': ['user_id', 'session_started_at']},
            {'columns': ['ingested_at']},
            {'columns': ['sessionized_at']},
        ],
    )
}}

{%- if is_incremental() %}
    {%- set changed_dates = source_changed_dates(
        ref('stg_ecommerce__events')
    ) %}
{%- endif %}

with

events as (

    select * from {{ ref('stg_ecommerce__events') }}
    {% if is_incremental() -%}
    -- the changed days plus one day either side: a session crossing
    -- midnight is always read whole
    where {{ time_in_dates('event_timestamp', changed_dates, 1) }}
    {%- endif %}

),

sequenced as (

    select
        event_id,
        user_id,
        session_id,
        event_type,
        event_timestamp,
        event_date,
        product_id,
        category,
        price,
        quantity,
        page_url,
        user_agent,
        {{ mask_ip('ip_address') }} as ip_network,
        ingested_at,
        min(event_timestamp) over (
            partition by session_id
        ) as session_started_at,
        row_number() over (
            partition by session_id
            order by event_timestamp asc, event_id asc
        ) as session_sequence_number

    from events

),

{% if is_incremental() -%}
changed_sessions as (

    -- sessions with at least one event on a changed day are rebuilt whole
    select distinct session_id
    from sequenced
    where {{ date_in('event_date', changed_dates) }}

),

{% endif -%}

scoped as (

    select sequenced.*
    from sequenced
    {% if is_incremental() -%}
    inner join changed_sessions
        on sequenced.session_id = changed_sessions.session_id
    {%- endif %}

),

scoped_first_sessions as (

    select
        user_id,
        min(session_started_at) as first_session_started_at
    from scoped
    group by user_id

),

stored_first_sessions as (

    -- the earliest session already stored per user (one index probe each)
    select
        scoped_first_sessions.user_id,
        {% if is_incremental() -%}
        stored_sessions.min_session_started_at
        {%- else -%}
            null::timestamptz
        {%- endif %} as first_session_started_at
    from scoped_first_sessions
    {% if is_incremental() -%}
    cross join
        lateral (
            select min(this_model.session_started_at) as min_session_started_at
            from {{ this }} as this_model
            where this_model.user_id = scoped_first_sessions.user_id
        ) as stored_sessions
    {%- endif %}

),

first_sessions as (

    -- least() skips nulls: users new to this model keep their scoped start
    select
        scoped_first_sessions.user_id,
        least(
            scoped_first_sessions.first_session_started_at,
            stored_first_sessions.first_session_started_at
        ) as first_session_started_at
    from scoped_first_sessions
    inner join stored_first_sessions
        on scoped_first_sessions.user_id = stored_first_sessions.user_id

),

sessionized as (

    select
        scoped.event_id,
        scoped.user_id,
        scoped.session_id,
        scoped.event_type,
        scoped.event_timestamp,
        scoped.event_date,
        scoped.product_id,
        scoped.category,
        scoped.price,
        scoped.quantity,
        scoped.page_url,
        scoped.user_agent,
        scoped.ip_network,
        scoped.session_started_at,
        scoped.session_sequence_number,
        scoped.session_started_at
        > first_sessions.first_session_started_at as is_returning_user,
        scoped.ingested_at,
        now() as sessionized_at

    from scoped
    inner join first_sessions
        on scoped.user_id = first_sessions.user_id

),

{% if is_incremental() -%}
earlier_first_sessions as (

    -- users whose first session moved back in time because of a late event
    select
        scoped_first_sessions.user_id,
        scoped_first_sessions.first_session_started_at
    from scoped_first_sessions
    inner join stored_first_sessions
        on scoped_first_sessions.user_id = stored_first_sessions.user_id
    where
        scoped_first_sessions.first_session_started_at
        < stored_first_sessions.first_session_started_at

),

newly_returning as (

    -- their stored sessions after the new first one now count as returning
    select
        stored_events.event_id,
        stored_events.user_id,
        stored_events.session_id,
        stored_events.event_type,
        stored_events.event_timestamp,
        stored_events.event_date,
        stored_events.product_id,
        stored_events.category,
        stored_events.price,
        stored_events.quantity,
        stored_events.page_url,
        stored_events.user_agent,
        stored_events.ip_network,
        stored_events.session_started_at,
        stored_events.session_sequence_number,
        true as is_returning_user,
        stored_events.ingested_at,
        now() as sessionized_at

    from earlier_first_sessions
    cross join
        lateral (
            select this_model.*
            from {{ this }} as this_model
            where
                this_model.user_id = earlier_first_sessions.user_id
                and this_model.session_started_at
                > earlier_first_sessions.first_session_started_at
                and not this_model.is_returning_user
        ) as stored_events
    where not exists (
        select changed_sessions.session_id
        from changed_sessions
        where changed_sessions.session_id = stored_events.session_id
    )

),

{% endif -%}

final as (

    select * from sessionized
    {% if is_incremental() -%}
    union all
    select * from newly_returning
    {%- endif %}

)

select * from final
