-- One summary row per Airflow run of the daily pipeline (written by its `report` task as
-- the loader role; the default privileges of 0004 already cover new tables in ops).
-- A rerun of the same run id replaces its row; reruns of a day under new run ids add rows.

create table if not exists ops.pipeline_run_reports (
    dag_id             text not null,
    run_id             text not null,
    logical_date       date not null,
    status             text not null,
    raw_events         bigint,
    rejected_events    bigint,
    total_events       bigint,
    total_revenue      numeric(15, 2),
    aggregation_rows   bigint,
    published_messages bigint,
    tasks_succeeded    integer,
    tasks_logged       integer,
    gates              jsonb not null default '{}'::jsonb,
    summary            jsonb not null default '{}'::jsonb,
    run_started_at     timestamptz,
    reported_at        timestamptz not null default now(),
    primary key (dag_id, run_id)
);
create index if not exists pipeline_run_reports_logical_date_idx
    on ops.pipeline_run_reports (logical_date);
