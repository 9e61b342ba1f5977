-- Every valid landed event is in processed_events exactly once, and nothing
-- else is: one row per discrepancy (missing, extra or duplicated event_id).
-- Days the maintenance job pruned are excused: an event of a day archived out
-- of raw is in processed_events only, and a day restored from the archive may
-- be older than the marts keep (ops.pruned_days).

with

pruned as (

    select
        layer,
        pruned_date
    from {{ ref('stg_ops__pruned_days') }}

),

marts_edge as (

    -- the marts hold whole days from here on
    select coalesce(max(pruned_date) + 1, '-infinity'::date) as first_whole_date
    from pruned
    where layer = 'marts'

),

staged as (

    select
        event_id,
        event_date
    from {{ ref('stg_ecommerce__events') }}

),

processed as (

    select
        event_id,
        min(event_date) as event_date,
        count(*) as copies
    from {{ ref('processed_events') }}
    group by event_id

),

compared as (

    select
        coalesce(staged.event_id, processed.event_id) as event_id,
        case
            when processed.event_id is null then 'missing from processed_events'
            when staged.event_id is null then 'not a landed event'
            else 'processed ' || processed.copies || ' times'
        end as problem

    from staged
    full outer join processed
        on staged.event_id = processed.event_id
    where
        (
            processed.event_id is null
            and staged.event_date
            >= (select marts_edge.first_whole_date from marts_edge)
        )
        or (
            staged.event_id is null
            and processed.event_date not in (
                select pruned.pruned_date from pruned
                where pruned.layer = 'raw'
            )
        )
        or processed.copies <> 1

)

select * from compared
