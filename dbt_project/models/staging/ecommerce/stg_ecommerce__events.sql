with

source as (

    select * from {{ source('ecommerce', 'raw_events') }}

),

renamed as (

    select
        -- ids
        event_id,
        user_id,
        session_id,

        -- what and when (timestamptz is an instant; dates are taken in UTC)
        event_type,
        event_timestamp,
        (event_timestamp at time zone 'UTC')::date as event_date,

        -- product (null for page views of non-product pages)
        product_id,
        category,
        price,
        quantity,

        -- client
        page_url,
        user_agent,
        ip_address,

        -- lineage
        kafka_topic,
        kafka_partition,
        kafka_offset,
        kafka_timestamp,
        ingested_at

    from source

)

select * from renamed
