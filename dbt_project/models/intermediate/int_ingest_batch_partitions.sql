with

batches as (

    select * from {{ ref('stg_ops__ingest_batches') }}

),

batch_partitions as (

    -- the ledger stores {"partition": offset} objects, end offsets exclusive
    select
        query_name,
        batch_id,
        kafka_epoch,
        committed_at,
        start_offsets,
        end_offsets,
        jsonb_object_keys(end_offsets) as partition_key

    from batches

),

final as (

    select
        query_name,
        batch_id,
        kafka_epoch,
        partition_key::integer as kafka_partition,
        (start_offsets ->> partition_key)::bigint as start_offset,
        (end_offsets ->> partition_key)::bigint as end_offset,
        committed_at

    from batch_partitions

)

select * from final
