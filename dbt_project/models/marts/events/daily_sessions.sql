{{
    config(
        materialized='incremental',
        unique_key='session_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['session_date']}],
    )
}}

{#- Rebuilds whole days: every session date with a session user_sessions
    (re)wrote since this model's newest write is deleted and recounted -#}

with

{% if is_incremental() -%}
changed_dates as (

    -- user_sessions.updated_at is indexed: this reads the new writes only.
    -- A day either side too: a late event can move a session's start (and
    -- date), as user_sessions' own merge allows for
    select distinct written.session_date + neighbour.offset_days as session_date
    from {{ ref('user_sessions') }} as written
    cross join (values (-1), (0), (1)) as neighbour (offset_days)
    where
        written.updated_at > (
            select
                coalesce(
                    max(held.sessions_updated_at), '-infinity'
                ) as newest_counted
            from {{ this }} as held
        )

),

{% endif -%}

sessions as (

    select * from {{ ref('user_sessions') }}
    {% if is_incremental() -%}
    where
        session_date in (
            select changed_dates.session_date from changed_dates
        )
    {%- endif %}

),

final as (

    select
        session_date,
        device_type,
        count(*) as sessions,
        count(*) filter (where page_views > 0) as viewed_sessions,
        count(*) filter (where add_to_carts > 0) as carted_sessions,
        count(*) filter (where is_converted) as converted_sessions,
        count(*) filter (
            where add_to_carts > 0 and not is_converted
        ) as abandoned_sessions,
        count(*) filter (where is_returning_user) as returning_sessions,
        sum(revenue)::numeric(15, 2) as revenue,
        max(updated_at) as sessions_updated_at

    from sessions
    group by session_date, device_type

)

select * from final
