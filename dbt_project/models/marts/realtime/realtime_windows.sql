with

windows as (

    select * from {{ ref('stg_ecommerce__realtime_metrics') }}

),

final as (

    select
        window_start,
        window_end,
        window_date,
        event_type,
        category,
        events,
        revenue,
        unique_users,
        unique_sessions,
        updated_at

    from windows

)

select * from final
