with

batches as (

    select * from {{ ref('stg_ops__ingest_batches') }}

),

final as (

    select
        query_name,
        batch_id,
        kafka_epoch,
        committed_at,
        (committed_at at time zone 'UTC')::date as committed_date,
        rows_read,
        rows_valid,
        rows_rejected,
        rows_duplicate

    from batches

)

select * from final
