with

rolled_up as (

    -- the hours up to the last dbt run (an incremental table)
    select * from {{ ref('int_ingest_hours') }}

),

cut as (

    -- the rolled-up hours before this one are final; this one and later are
    -- counted from the ledger when read (its newest hour may have been
    -- partial, and the hour before may gain a batch that began in it)
    select
        coalesce(
            max(committed_hour) - interval '1 hour', '-infinity'
        ) as committed_hour
    from rolled_up

),

batches as (

    select * from {{ ref('stg_ops__ingest_batches') }}
    where committed_at >= (select cut.committed_hour from cut)

),

recent as (

    {{ ledger_hours('batches') }}

),

hours as (

    -- the same columns in the same order: both come from ledger_hours
    select * from rolled_up
    where committed_hour < (select cut.committed_hour from cut)

    union all

    select * from recent

),

final as (

    select
        committed_hour,
        (committed_hour at time zone 'UTC')::date as committed_date,
        batches,
        rows_read,
        rows_valid,
        rows_rejected,
        rows_duplicate,
        last_committed_at

    from hours

)

select * from final
