"""Alerts on `data-quality-alerts` for failed pipeline tasks.

A gate failure's alert is the gate's own (layer, failed expectations, counts); any other
task's alert carries the task and its error. Both name the DAG run and task;
keyed by `<dag_id>|<logical day>|<task_id>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ecom.config import Settings
from ecom.kafka_clients import produce_json
from ecom_pipeline.execution_log import TaskAttempt, clip_error


def task_failure_alert(attempt: TaskAttempt, error: str | None, *,
                       gate_alert: Mapping[str, Any] | None = None,
                       now: datetime | None = None) -> dict[str, Any]:
    """The alert JSON for a task that failed for good (retries exhausted or fail-fast).

    A failed gate's alert is the quality gate's own payload (`kind`, `layer`, its GE
    `run_id`, `failed` expectations with counts) plus the Airflow coordinates below.
    """
    alert: dict[str, Any] = dict(gate_alert) if gate_alert is not None else {
        "kind": "pipeline_task_failed"}
    alert.update({
        "source": "airflow",
        "dag_id": attempt.dag_id,
        "dag_run_id": attempt.run_id,
        "task_id": attempt.task_id,
        "try_number": attempt.try_number,
        "logical_date": attempt.logical_date.isoformat() if attempt.logical_date else None,
        "error": clip_error(error),
        "alerted_at": (now or datetime.now(UTC)).isoformat(),
    })
    return alert


def alert_key(attempt: TaskAttempt) -> str:
    day = attempt.logical_date.isoformat() if attempt.logical_date else "-"
    return f"{attempt.dag_id}|{day}|{attempt.task_id}"


def publish_alert(settings: Settings, attempt: TaskAttempt, alert: dict[str, Any]) -> None:
    produce_json(settings, settings.topic_alerts, [(alert_key(attempt), alert)],
                 client_id="ecom-airflow")
