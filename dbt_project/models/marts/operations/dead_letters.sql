with

rejected as (

    select * from {{ ref('stg_ecommerce__rejected_events') }}

),

final as (

    -- never the raw payload nor the Kafka key: the payload carries the
    -- client's IP address and user agent, which stay in raw
    select
        rejected_id,
        received_at,
        received_date,
        reason_code,
        reason_message,
        claimed_event_id,
        raw_size_bytes,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        kafka_timestamp

    from rejected

)

select * from final
