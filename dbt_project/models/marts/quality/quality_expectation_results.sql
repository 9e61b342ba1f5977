with

results as (

    select * from {{ ref('stg_ops__data_quality_logs') }}

),

final as (

    -- observed_value is kept only when it is a number: for a failed column
    -- check it holds sample values, which may be an IP address or a user agent
    select
        data_quality_log_id,
        run_id,
        layer,
        suite_name,
        expectation_type,
        column_name,
        is_success,
        unexpected_count,
        element_count,
        (
            100.0 * unexpected_count / nullif(element_count, 0)
        )::numeric(7, 3) as unexpected_percent,
        case
            when jsonb_typeof(observed_value) = 'number'
                then (observed_value #>> '{}')::numeric
        end as observed_value_number,
        logical_date,
        run_started_at,
        logged_at

    from results

)

select * from final
