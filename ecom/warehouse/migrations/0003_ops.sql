-- Operational tables: ingest ledger, data-quality results, pipeline execution logs.

-- One row per committed micro-batch: a replayed batch id is skipped.
create table if not exists ops.ingest_batches (
    query_name     text not null,
    batch_id       bigint not null,
    start_offsets  jsonb,
    end_offsets    jsonb,
    rows_read      bigint not null default 0,
    rows_valid     bigint not null default 0,
    rows_rejected  bigint not null default 0,
    rows_duplicate bigint not null default 0,
    committed_at   timestamptz not null default now(),
    primary key (query_name, batch_id)
);

create table if not exists ops.data_quality_logs (
    log_id             bigint generated always as identity primary key,
    run_id             text not null,
    layer              text not null,
    suite_name         text not null,
    expectation_type   text not null,
    column_name        text,
    expectation_kwargs jsonb,
    success            boolean not null,
    observed_value     jsonb,
    unexpected_count   bigint,
    element_count      bigint,
    logical_date       date,
    run_started_at     timestamptz not null,
    logged_at          timestamptz not null default now()
);
create index if not exists data_quality_logs_run_idx on ops.data_quality_logs (run_id);

create table if not exists ops.pipeline_execution_logs (
    log_id        bigint generated always as identity primary key,
    dag_id        text not null,
    run_id        text not null,
    task_id       text not null,
    try_number    integer,
    logical_date  date,
    status        text not null,
    started_at    timestamptz,
    ended_at      timestamptz,
    duration_s    double precision,
    rows_affected bigint,
    error_text    text,
    logged_at     timestamptz not null default now()
);
create index if not exists pipeline_execution_logs_run_idx
    on ops.pipeline_execution_logs (dag_id, run_id);
