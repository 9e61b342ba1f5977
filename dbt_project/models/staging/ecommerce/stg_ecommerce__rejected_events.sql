with

source as (

    select * from {{ source('ecommerce', 'rejected_events') }}

),

renamed as (

    select
        rejected_id,
        event_id as claimed_event_id,
        reason_code,
        reason_message,
        raw_size_bytes,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        kafka_key,
        kafka_timestamp,
        received_at,
        (received_at at time zone 'UTC')::date as received_date

    from source

)

select * from renamed
