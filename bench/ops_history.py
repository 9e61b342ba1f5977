"""The operational history a month of running leaves in `ops`, generated inside PostgreSQL.

For `bench/dashboard.py`: the operations and quality pages read the ops tables, whose size
follows time, not events. A streaming job with a 1-second trigger under steady traffic
commits one micro-batch a second (86,400 ledger rows a day); the daily DAG logs one
attempt per task (65 tasks) and three quality gates (~67 expectations). Rows carry the
ledger name `bench-history` and run ids `bench__<day>`, so they never collide with what
the seeding landed.
"""

from __future__ import annotations

from datetime import date

import psycopg2.extensions

LEDGER = "bench-history"

# One batch per `trigger` seconds over the day; each reads the records of its second and
# touches one partition of three (offsets grow per partition), 1% of them dead letters.
_LEDGER_SQL = """
insert into ops.ingest_batches (
    query_name, batch_id, start_offsets, end_offsets, rows_read, rows_valid, rows_rejected,
    rows_duplicate, committed_at, kafka_epoch
)
select
    %(ledger)s, %(batch_base)s + i,
    jsonb_build_object((i %% 3)::text, %(offset_base)s + i * per_batch),
    jsonb_build_object((i %% 3)::text, %(offset_base)s + (i + 1) * per_batch),
    per_batch, per_batch - rejected, rejected, 0,
    %(day)s::timestamptz + i * %(trigger)s * interval '1 second',
    0
from generate_series(0, %(batches)s - 1) as g (i)
cross join lateral (
    select greatest(1, round(%(events)s::numeric * %(trigger)s / 86400))::bigint as per_batch,
        case when i %% 100 = 0 then 1 else 0 end as rejected
) as sizes
"""

_TASKS_SQL = """
insert into ops.pipeline_execution_logs (
    dag_id, run_id, task_id, try_number, logical_date, status, started_at, ended_at,
    duration_s, rows_affected, logged_at
)
select
    'ecommerce_analytics_pipeline', 'bench__' || %(day)s, 'task_' || lpad(t::text, 3, '0'),
    1, %(day)s::date, 'success',
    %(day)s::timestamptz + interval '26 hours' + t * interval '2 seconds',
    %(day)s::timestamptz + interval '26 hours' + (t + 1) * interval '2 seconds',
    2.0, 1000, %(day)s::timestamptz + interval '26 hours' + (t + 1) * interval '2 seconds'
from generate_series(1, %(tasks)s) as g (t)
"""

_GATES_SQL = """
insert into ops.data_quality_logs (
    run_id, layer, suite_name, expectation_type, column_name, expectation_kwargs, success,
    observed_value, unexpected_count, element_count, logical_date, run_started_at, logged_at
)
select
    layer || '-' || %(day)s || '-bench', layer, layer || '_suite',
    'expect_column_values_to_not_be_null', 'column_' || e, '{}'::jsonb,
    not (e = 1 and extract(day from %(day)s::date)::int %% 10 = 0),
    to_jsonb(e), case when e = 1 and extract(day from %(day)s::date)::int %% 10 = 0
        then 3 else 0 end, %(events)s, %(day)s::date,
    %(day)s::timestamptz + interval '26 hours', %(day)s::timestamptz + interval '26 hours'
from unnest(array['raw', 'staging', 'marts']) as layers (layer)
cross join generate_series(1, %(expectations)s) as g (e)
"""


def load_day(conn: psycopg2.extensions.connection, day: date, day_number: int,
             events_per_day: int, trigger_s: int = 1, tasks: int = 65,
             expectations: int = 22) -> int:
    """Append one day of ops history (as the admin); returns the ledger rows written."""
    batches = 86_400 // trigger_s
    params = {
        "ledger": LEDGER, "day": day.isoformat(), "trigger": trigger_s, "batches": batches,
        "batch_base": day_number * batches, "events": events_per_day,
        "offset_base": day_number * events_per_day * 2, "tasks": tasks,
        "expectations": expectations,
    }
    with conn.cursor() as cur:
        cur.execute(_LEDGER_SQL, params)
        cur.execute(_TASKS_SQL, params)
        cur.execute(_GATES_SQL, params)
    conn.commit()
    return batches
