with

source as (

    select * from {{ source('ecommerce', 'realtime_metrics') }}

),

renamed as (

    select
        window_start,
        window_end,
        (window_start at time zone 'UTC')::date as window_date,
        event_type,
        category,
        events,
        revenue,
        unique_users,
        unique_sessions,
        updated_at

    from source

)

select * from renamed
