"""Daily ELT pipeline of the e-commerce warehouse (Apache Airflow 3 + astronomer-cosmos).

extract -> gate_raw -> transform_staging (dbt) -> gate_staging -> transform_marts (dbt)
-> gate_marts -> publish -> report

- **extract**: Spark batch catch-up from Kafka `ecommerce-events` into `raw` through the
  ingestion sink (exactly once: a replay lands nothing twice).
- **gate_raw / gate_staging / gate_marts**: the layer's Great Expectations checkpoint for
  the run's logical day; a failed gate fails at once and stops everything downstream.
- **transform_staging / transform_marts**: Cosmos task groups rendered from the dbt
  manifest, in watcher mode: one `dbt build` per group, then one task per model and one
  for its tests showing what dbt reported (a failed one retries that node alone).
- **publish**: the day's `daily_aggregations` rows to the `daily-aggregations` topic.
- **report**: one summary row in `ops.pipeline_run_reports`.

Every task works on the run's logical day (the UTC day of its logical date: the 02:00
run on D+1 processes D), so reruns and backfills are idempotent. Every attempt is logged
in `ops.pipeline_execution_logs`; a task failing for good alerts on `data-quality-alerts`
and posts one webhook message, and so does a run not finished within
`ECOM_PIPELINE_DEADLINE_MINUTES` of being queued (a DeadlineAlert).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, chain, task
from ecom_pipeline import DAG_ID, callbacks, notifications, steps
from ecom_pipeline.days import logical_day
from ecom_pipeline.dbt_groups import MARTS_SELECT, STAGING_SELECT, dbt_group, run_after_producer
from ecom_pipeline.execution_log import ROWS_XCOM_KEY
from ecom_pipeline.publish import publish_day
from ecom_pipeline.report import build_report, write_report

from ecom.config import load_settings

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=20),
    "on_execute_callback": callbacks.on_execute,
    "on_success_callback": callbacks.on_success,
    "on_retry_callback": callbacks.on_retry,
    "on_failure_callback": callbacks.on_failure,
}


def _rows(context: dict[str, Any], value: int | None) -> None:
    """XCom `rows_affected`, which the success callback writes to the execution log."""
    if value is not None:
        context["ti"].xcom_push(key=ROWS_XCOM_KEY, value=int(value))


with DAG(
    dag_id=DAG_ID,
    description="Kafka -> Spark -> raw -> dbt staging/marts, gated by Great Expectations",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    deadline=notifications.deadline_alert(load_settings().pipeline_deadline_minutes),
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["ecommerce", "elt", "dbt", "great-expectations"],
) as dag:
    settings = load_settings()

    @task(execution_timeout=timedelta(minutes=45))
    def extract(**context: Any) -> dict[str, Any]:
        """Spark batch catch-up from Kafka into raw for the logical day."""
        result = steps.extract(load_settings(), logical_day(context))
        _rows(context, result.get("rows_affected"))
        return result

    def gate_task(layer: str) -> Any:
        @task(task_id=f"gate_{layer}")
        def gate(**context: Any) -> dict[str, Any]:
            result = steps.gate(load_settings(), layer, logical_day(context))
            _rows(context, result.get("rows_affected"))
            return result

        return gate()

    @task
    def publish(**context: Any) -> int:
        """The day's daily_aggregations rows to the daily-aggregations topic."""
        sent = publish_day(load_settings(), logical_day(context), context["run_id"])
        _rows(context, sent)
        return sent

    @task
    def report(**context: Any) -> dict[str, Any]:
        """One summary row for this run in ops.pipeline_run_reports."""
        ti = context["ti"]
        extracted = ti.xcom_pull(task_ids="extract") or {}
        summary = build_report(
            load_settings(), dag_id=DAG_ID, run_id=context["run_id"],
            day=logical_day(context), rejected_events=extracted.get("rows_rejected"),
            published_messages=ti.xcom_pull(task_ids="publish"),
            run_started_at=context["dag_run"].start_date,
        )
        write_report(load_settings(), summary)
        _rows(context, 1)
        return {"raw_events": summary.raw_events, "total_events": summary.total_events,
                "total_revenue": str(summary.total_revenue), "gates": summary.gates}

    staging = dbt_group("transform_staging", STAGING_SELECT, settings,
                        multi_parent_tests=False)
    marts = dbt_group("transform_marts", MARTS_SELECT, settings)
    chain(extract(), gate_task("raw"), staging, gate_task("staging"), marts,
          gate_task("marts"), publish(), report())
    run_after_producer(staging)
    run_after_producer(marts)
