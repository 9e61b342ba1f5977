-- Every valid landed event is in processed_events exactly once, and nothing
-- else is: one row per discrepancy (missing, extra or duplicated event_id).

with

staged as (

    select event_id from {{ ref('stg_ecommerce__events') }}

),

processed as (

    select
        event_id,
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
        processed.event_id is null
        or staged.event_id is null
        or processed.copies <> 1

)

select * from compared
