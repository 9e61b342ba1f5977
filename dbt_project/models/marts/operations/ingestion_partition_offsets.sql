with

batches as (

    select * from {{ ref('stg_ops__ingest_batches') }}

),

current_epoch as (

    select max(kafka_epoch) as kafka_epoch from batches

),

partition_ranges as (

    -- one row per batch and partition it read: the ledger stores
    -- {"partition": offset} objects, end offsets exclusive
    select
        batches.kafka_epoch,
        ends.key::integer as kafka_partition,
        starts.value::bigint as start_offset,
        ends.value::bigint as end_offset,
        batches.committed_at

    from batches
    cross join lateral jsonb_each_text(batches.end_offsets) as ends (key, value)
    left join lateral jsonb_each_text(batches.start_offsets) as starts (key, value)
        on ends.key = starts.key

),

final as (

    select
        partition_ranges.kafka_epoch,
        partition_ranges.kafka_partition,
        min(partition_ranges.start_offset) as first_offset,
        max(partition_ranges.end_offset) as committed_offset,
        count(*) as batches,
        max(partition_ranges.committed_at) as last_committed_at,
        coalesce(
            partition_ranges.kafka_epoch = max(current_epoch.kafka_epoch), false
        ) as is_current_epoch

    from partition_ranges
    cross join current_epoch
    group by partition_ranges.kafka_epoch, partition_ranges.kafka_partition

)

select * from final
