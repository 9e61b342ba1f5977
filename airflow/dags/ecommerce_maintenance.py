"""Daily maintenance of the e-commerce warehouse (Apache Airflow 3).

kafka_retention -> backup -> expire_backups -> archive -> prune

- **kafka_retention**: each topic's retention.ms checked (and set where it differs).
- **backup**: the daily pgBackRest backup of the embedded cluster (full weekly,
  differential otherwise; WAL is archived continuously in between).
- **expire_backups**: backups beyond ECOM_BACKUP_RETENTION_FULL full ones, and their WAL.
- **archive**: raw days older than ECOM_ARCHIVE_AFTER_DAYS to Parquet, verified, then
  deleted from raw (days the broker could still replay, or dbt has not built, wait).
- **prune**: ops logs, realtime windows and date-grained marts past their retention.

Runs at 04:00 UTC on its own schedule rather than after the analytics DAG: backups must
not depend on the analytics pipeline succeeding, and nothing here needs it first (the
archive only takes days dbt has built; it touches days a month old). The steps run in
sequence so that nothing is deleted unless the day's backup succeeded. Every action is a
row of `ops.maintenance_actions` (`ecom maintenance log`); every attempt a row of
`ops.pipeline_execution_logs`, and a task failing for good alerts on data-quality-alerts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, chain, task
from ecom_pipeline import callbacks
from ecom_pipeline.days import logical_day
from ecom_pipeline.maintenance import MAINTENANCE_DAG_ID, STEPS, run_step

from ecom.config import load_settings

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-engineering",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(hours=2),
    "on_execute_callback": callbacks.on_execute,
    "on_success_callback": callbacks.on_success,
    "on_retry_callback": callbacks.on_retry,
    "on_failure_callback": callbacks.on_failure,
}


def maintenance_task(name: str) -> Any:
    @task(task_id=name)
    def step(**context: Any) -> dict[str, Any]:
        result = run_step(load_settings(), name, logical_day(context), context["run_id"])
        context["ti"].xcom_push(key=callbacks.ROWS_XCOM_KEY, value=result["rows_affected"])
        return result

    return step()


with DAG(
    dag_id=MAINTENANCE_DAG_ID,
    description="Kafka retention, pgBackRest backups, raw archive, retention pruning",
    schedule=CronDataIntervalTimetable("0 4 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["ecommerce", "operations", "backup", "retention"],
) as dag:
    chain(*(maintenance_task(name) for name in STEPS))
