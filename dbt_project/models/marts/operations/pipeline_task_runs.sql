with

attempts as (

    select * from {{ ref('stg_ops__pipeline_execution_logs') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by dag_id, run_id, task_id
            order by try_number desc nulls last, pipeline_execution_log_id desc
        ) as attempt_rank

    from attempts

),

final as (

    select
        pipeline_execution_log_id,
        dag_id,
        run_id,
        task_id,
        -- Cosmos names a dbt task `<group>.<model>_run`: the group is the stage
        split_part(task_id, '.', 1) as task_group,
        try_number,
        logical_date,
        status,
        started_at,
        ended_at,
        duration_seconds,
        rows_affected,
        -- the first line only: the full text (traceback) stays in ops
        left(split_part(error_text, e'\n', 1), 300) as error_summary,
        attempt_rank = 1 as is_latest_attempt,
        logged_at

    from ranked

)

select * from final
