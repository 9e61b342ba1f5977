with

source as (

    select * from {{ source('ops', 'ingest_batches') }}

),

renamed as (

    select
        query_name,
        batch_id,
        kafka_epoch,
        start_offsets,
        end_offsets,
        rows_read,
        rows_valid,
        rows_rejected,
        rows_duplicate,
        committed_at

    from source

)

select * from renamed
