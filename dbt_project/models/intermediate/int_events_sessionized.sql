{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='merge_by_date',
        meta={'merge_date_column': 'event_date'},
        on_schema_change='fail',
        post_hook=[
            'set local default_statistics_target = 20',
            'analyze {{ this }} (event_date, sessionized_at)',
        ],
        indexes=[
            {'columns': ['event_date', 'session_id', 'ingested_at']},
            {'columns': ['session_started_at']},
            {'columns': ['user_id', 'session_started_at']},
            {'columns': ['event_date', 'sessionized_at']},
        ],
    )
}}

{#- Incremental runs rebuild only the sessions that gained events, and write
    only the rows whose session context changed (see the overview); unsorted:
    sorting them for index locality cost more than it saved (measured). The
    post-hook refreshes, from a small sample, the statistics of the two columns
    the next models filter on (without them daily_aggregations plans a 35 s
    nested loop for one new day); the others barely move with a day. No index on
    event_id: merge_by_date matches keys within the changed dates (read through
    the event_date index), and the unique test guards the key. -#}
{%- if is_incremental() %}
{%- set changed_dates = source_changed_dates(ref('stg_ecommerce__events')) %}
{#- the days around them: a session crossing midnight has rows there #}
{%- set neighbours = neighbour_dates(changed_dates) %}
{%- endif %}
{#- the columns of `events` below, as neighbour rows re-read from this model -#}
{%- set event_columns = [
    'event_id', 'user_id', 'session_id', 'event_type', 'event_timestamp',
    'event_date', 'product_id', 'category', 'price', 'quantity', 'page_url',
    'user_agent', 'ip_network', 'ingested_at',
] %}

with

events as (

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
        ingested_at
    from {{ ref('stg_ecommerce__events') }}
    {% if is_incremental() -%}
    where {{ time_in_dates('event_timestamp', changed_dates) }}
    {%- endif %}

),

{% if is_incremental() -%}
stored as (

    -- what this model already holds for those days
    select
        event_id,
        session_id,
        session_started_at,
        session_sequence_number,
        is_returning_user
    from {{ this }}
    where {{ date_in('event_date', changed_dates) }}

),

changed_sessions as (

    -- sessions with an event this model does not hold yet
    select distinct events.session_id
    from events
    left join stored
        on events.event_id = stored.event_id
    where stored.event_id is null

),

neighbour_sessions as (

    -- those of them with events stored on the days around the changed ones
    -- (a session crossing midnight): an index-only scan of the
    -- (event_date, session_id, ingested_at) index, not a read of those days
    select distinct this_model.session_id
    from {{ this }} as this_model
    inner join changed_sessions
        on this_model.session_id = changed_sessions.session_id
    where {{ date_any('this_model.event_date', neighbours) }}

),

neighbour_events as (

    -- their events on those days, taken from this model: raw is read for the
    -- changed days only (lateral: one index probe per session)
    select
        {%- for column in event_columns %}
        this_model.{{ column }},
        {%- endfor %}
        this_model.session_started_at as stored_session_started_at,
        this_model.session_sequence_number as stored_session_sequence_number,
        this_model.is_returning_user as stored_is_returning_user
    from neighbour_sessions
    cross join
        lateral (
            select stored_row.*
            from {{ this }} as stored_row
            where
                stored_row.session_id = neighbour_sessions.session_id
                and {{ date_any('stored_row.event_date', neighbours) }}
        ) as this_model

),

{% endif -%}

session_events as (

    {% if is_incremental() -%}
    select events.*
    from events
    inner join changed_sessions
        on events.session_id = changed_sessions.session_id
    union all
    select {{ event_columns | join(', ') }}
    from neighbour_events
    {%- else -%}
    select * from events
    {%- endif %}

),

sequenced as (

    select
        *,
        min(event_timestamp) over (
            partition by session_id
        ) as session_started_at,
        row_number() over (
            partition by session_id
            order by event_timestamp asc, event_id asc
        ) as session_sequence_number

    from session_events

),

scoped_first_sessions as (

    select
        user_id,
        min(session_started_at) as first_session_started_at
    from sequenced
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
        sequenced.event_id,
        sequenced.user_id,
        sequenced.session_id,
        sequenced.event_type,
        sequenced.event_timestamp,
        sequenced.event_date,
        sequenced.product_id,
        sequenced.category,
        sequenced.price,
        sequenced.quantity,
        sequenced.page_url,
        sequenced.user_agent,
        sequenced.ip_network,
        sequenced.session_started_at,
        sequenced.session_sequence_number,
        sequenced.session_started_at
        > first_sessions.first_session_started_at as is_returning_user,
        sequenced.ingested_at,
        now() as sessionized_at

    from sequenced
    inner join first_sessions
        on sequenced.user_id = first_sessions.user_id

),

{% if is_incremental() -%}
stored_context as (

    -- the stored session context of every row re-sessionised above
    select * from stored
    union all
    select
        event_id,
        session_id,
        stored_session_started_at,
        stored_session_sequence_number,
        stored_is_returning_user
    from neighbour_events

),

changed_rows as (

    -- new events, and stored ones whose session context moved
    select sessionized.*
    from sessionized
    left join stored_context
        on sessionized.event_id = stored_context.event_id
    where
        stored_context.event_id is null
        or sessionized.session_started_at <> stored_context.session_started_at
        or sessionized.session_sequence_number
        <> stored_context.session_sequence_number
        or sessionized.is_returning_user
        <> stored_context.is_returning_user

),

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

    {% if is_incremental() -%}
    select * from changed_rows
    union all
    select * from newly_returning
    {%- else -%}
    select * from sessionized
    {%- endif %}

)

select * from final
