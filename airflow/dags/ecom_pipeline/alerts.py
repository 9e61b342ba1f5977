"""Alerts on `data-quality-alerts` for failed pipeline tasks.

A gate failure's alert lists the failed expectations; any other task's alert carries the
task and its error. Keyed by `<dag_id>|<logical day>|<task_id>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ecom.config import Settings
from ecom_pipeline.execution_log import TaskAttempt, clip_error
from ecom_pipeline.kafka_out import produce_json


def task_failure_alert(attempt: TaskAttempt, error: str | None, *, layer: str | None = None,
                       failed_expectations: Sequence[Any] | None = None,
                       now: datetime | None = None) -> dict[str, Any]:
    """The alert JSON for a task that failed for good (retries exhausted or fail-fast)."""
    is_gate = failed_expectations is not None
    alert: dict[str, Any] = {
        "alert_type": "quality_gate_failed" if is_gate else "pipeline_task_failed",
        "source": "airflow",
        "dag_id": attempt.dag_id,
        "run_id": attempt.run_id,
        "task_id": attempt.task_id,
        "try_number": attempt.try_number,
        "logical_date": attempt.logical_date.isoformat() if attempt.logical_date else None,
        "error": clip_error(error),
        "alerted_at": (now or datetime.now(UTC)).isoformat(),
    }
    if is_gate:
        alert["layer"] = layer
        alert["failed_expectations"] = list(failed_expectations or [])
        alert["failed_count"] = len(alert["failed_expectations"])
    return alert


def alert_key(attempt: TaskAttempt) -> str:
    day = attempt.logical_date.isoformat() if attempt.logical_date else "-"
    return f"{attempt.dag_id}|{day}|{attempt.task_id}"


def publish_alert(settings: Settings, attempt: TaskAttempt, alert: dict[str, Any]) -> None:
    produce_json(settings, settings.topic_alerts, [(alert_key(attempt), alert)])
