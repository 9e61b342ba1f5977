-- Event counts agree day by day between processed_events and
-- daily_aggregations (every event is in exactly one row of its date), and in
-- total with user_sessions. One row per date (or 'total') that disagrees.
-- Days are compared from the marts' retention edge on (ops.pruned_days):
-- before it, the daily marts lost whole days and the others whole sessions.

with

marts_edge as (

    select coalesce(max(pruned_date) + 1, '-infinity'::date) as first_whole_date
    from {{ ref('stg_ops__pruned_days') }}
    where layer = 'marts'

),

processed as (

    select
        event_date,
        count(*) as events
    from {{ ref('processed_events') }}
    where event_date >= (select marts_edge.first_whole_date from marts_edge)
    group by event_date

),

daily as (

    select
        date as event_date,
        sum(total_events) as events
    from {{ ref('daily_aggregations') }}
    where date >= (select marts_edge.first_whole_date from marts_edge)
    group by date

),

by_date as (

    select
        coalesce(processed.event_date, daily.event_date)::text as checked,
        coalesce(processed.events, 0) as processed_events,
        coalesce(daily.events, 0) as aggregated_events

    from processed
    full outer join daily
        on processed.event_date = daily.event_date

),

totals as (

    select
        'total' as checked,
        (select count(*) from {{ ref('processed_events') }})
        as processed_events,
        (
            select coalesce(sum(events), 0)
            from {{ ref('user_sessions') }}
        ) as aggregated_events

),

final as (

    select * from by_date
    where processed_events <> aggregated_events

    union all

    select * from totals
    where processed_events <> aggregated_events

)

select * from final
