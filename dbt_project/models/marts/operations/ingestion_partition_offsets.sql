with

rolled_up as (

    -- per epoch and partition up to the last dbt run (an incremental table)
    select * from {{ ref('int_ingest_partition_offsets') }}

),

recent as (

    -- the batches committed since, read when the view is read (from an hour
    -- earlier, as the incremental run does: minima and maxima do not mind)
    select * from {{ ref('int_ingest_batch_partitions') }}
    where committed_at > (
        select
            coalesce(
                max(rolled_up.last_committed_at) - interval '1 hour',
                '-infinity'
            ) as since
        from rolled_up
    )

),

partitions as (

    {{ partition_offsets('recent', 'rolled_up') }}

),

final as (

    select
        kafka_epoch,
        kafka_partition,
        first_offset,
        committed_offset,
        last_committed_at,
        kafka_epoch = max(kafka_epoch) over () as is_current_epoch

    from partitions

)

select * from final
