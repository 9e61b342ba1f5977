with

source as (

    select * from {{ source('ops', 'pipeline_execution_logs') }}

),

renamed as (

    select
        log_id as pipeline_execution_log_id,
        dag_id,
        run_id,
        task_id,
        try_number,
        logical_date,
        lower(status) as status,
        started_at,
        ended_at,
        duration_s as duration_seconds,
        rows_affected,
        error_text,
        logged_at

    from source

)

select * from renamed
