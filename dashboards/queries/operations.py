"""Operations page: DAG runs with each task's duration and state, ingestion batches landed and
rejected over time, committed offsets per partition (the page adds the broker's log ends),
the latest dead letters by reason. All from live views over the ops tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboards.warehouse import Query, Warehouse

LATEST_DEAD_LETTERS = 50
LATEST_BATCHES_SHOWN = 20

RUNS = Query("runs", """
select
    dag_id,
    run_id,
    logical_date,
    started_at,
    ended_at,
    duration_seconds,
    tasks_started,
    tasks_succeeded,
    tasks_failed,
    tasks_running,
    retries,
    state
from analytics.pipeline_runs
where started_at >= now() - %(days)s * interval '1 day'
order by started_at desc
""")

TASKS = Query("tasks", """
select
    run_id,
    logical_date,
    task_id,
    task_group,
    try_number,
    status,
    started_at,
    ended_at,
    duration_seconds,
    rows_affected,
    error_summary
from analytics.pipeline_task_runs
where is_latest_attempt
    and started_at >= now() - %(days)s * interval '1 day'
order by started_at, task_id
""")

BATCHES = Query("batches", """
select
    committed_hour as hour,
    batches,
    rows_read,
    rows_valid,
    rows_rejected,
    rows_duplicate
from analytics.ingestion_hourly
where committed_hour >= date_trunc('hour', now()) - %(days)s * interval '1 day'
order by committed_hour
""")

# ingestion_hourly keeps the ledger's history rolled up by hour (cheap to read whole);
# ingestion_batches is the ledger itself, read only in the hour before its newest batch
# (the bound reaches its committed_at index through the view: see the realtime page)
LAST_BATCH = Query("last_batch", """
select
    max(last_committed_at) as committed_at,
    sum(batches) as batches
from analytics.ingestion_hourly
""")

LATEST_BATCHES = Query("latest_batches", f"""
select
    committed_at,
    query_name,
    batch_id,
    kafka_epoch,
    rows_read,
    rows_valid,
    rows_rejected,
    rows_duplicate
from analytics.ingestion_batches
where committed_at >= (
    select max(last_committed_at) - interval '1 hour' from analytics.ingestion_hourly
)
order by committed_at desc, batch_id desc
limit {LATEST_BATCHES_SHOWN}
""")

OFFSETS = Query("offsets", """
select
    kafka_epoch,
    kafka_partition,
    committed_offset,
    last_committed_at
from analytics.ingestion_partition_offsets
where is_current_epoch
order by kafka_partition
""")

REASONS = Query("dead_letter_reasons", """
select
    reason_code,
    count(*) as dead_letters,
    max(received_at) as last_received_at
from analytics.dead_letters
where received_at >= now() - %(days)s * interval '1 day'
group by reason_code
order by count(*) desc, reason_code
""")

DEAD_LETTERS = Query("dead_letters", f"""
select
    received_at,
    reason_code,
    reason_message,
    claimed_event_id,
    kafka_partition,
    kafka_offset,
    raw_size_bytes
from analytics.dead_letters
order by received_at desc, rejected_id desc
limit {LATEST_DEAD_LETTERS}
""")

QUERIES = (RUNS, TASKS, BATCHES, LAST_BATCH, LATEST_BATCHES, OFFSETS, REASONS, DEAD_LETTERS)


def load(wh: Warehouse, days: int) -> dict[str, pd.DataFrame]:
    params: dict[str, Any] = {"days": days}
    return wh.frames(QUERIES, params)
