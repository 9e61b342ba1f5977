with

source as (

    select * from {{ source('ops', 'data_quality_logs') }}

),

renamed as (

    select
        log_id as data_quality_log_id,
        run_id,
        layer,
        suite_name,
        expectation_type,
        column_name,
        expectation_kwargs,
        success as is_success,
        observed_value,
        unexpected_count,
        element_count,
        logical_date,
        run_started_at,
        logged_at

    from source

)

select * from renamed
