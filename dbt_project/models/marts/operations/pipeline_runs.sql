with

task_runs as (

    select * from {{ ref('pipeline_task_runs') }}

),

runs as (

    select
        dag_id,
        run_id,
        max(logical_date) as logical_date,
        min(started_at) as started_at,
        max(ended_at) as ended_at,
        count(*) filter (where is_latest_attempt) as tasks_started,
        count(*) filter (
            where is_latest_attempt and status = 'success'
        ) as tasks_succeeded,
        count(*) filter (
            where is_latest_attempt and status = 'failed'
        ) as tasks_failed,
        count(*) filter (
            where is_latest_attempt and status = 'running'
        ) as tasks_running,
        count(*) filter (where not is_latest_attempt) as retries,
        sum(duration_seconds) filter (
            where is_latest_attempt
        ) as task_seconds

    from task_runs
    group by dag_id, run_id

),

final as (

    select
        dag_id,
        run_id,
        logical_date,
        started_at,
        ended_at,
        extract(epoch from ended_at - started_at)::numeric(12, 1)
            as duration_seconds,
        tasks_started,
        tasks_succeeded,
        tasks_failed,
        tasks_running,
        retries,
        task_seconds::numeric(12, 1) as task_seconds,
        case
            when tasks_failed > 0 then 'failed'
            when tasks_running > 0 then 'running'
            else 'success'
        end as state

    from runs

)

select * from final
