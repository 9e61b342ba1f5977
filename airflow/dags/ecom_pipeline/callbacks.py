"""Task callbacks (set through the DAG's default_args, so Cosmos' dbt tasks get them too).

Every attempt writes its row of `ops.pipeline_execution_logs`; a task that fails for good
also publishes an alert to `data-quality-alerts` and posts it to the webhook
(`ecom_pipeline.notifications`, once per task and day). A callback never changes a task's
outcome: Airflow logs a callback's exception and carries on, and so do we, loudly.

Except a dbt group's build (`dbt_producer_watcher`): it is never retried, and its failure
is its nodes' failure, each of which its model or test task retries alone. So the build
alerts no one; a node task that still fails after its retries does, with its dbt error, and
a build whose failed nodes all recover sends nothing (its error stays in the log row).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ecom.config import load_settings
from ecom_pipeline import alerts, execution_log, notifications
from ecom_pipeline.days import logical_day
from ecom_pipeline.dbt_results import is_watcher_node_task, rows_reported_by_build
from ecom_pipeline.execution_log import ROWS_XCOM_KEY, TaskAttempt

log = logging.getLogger(__name__)

#: Cosmos' `PRODUCER_WATCHER_TASK_ID` (not imported: importing cosmos before airflow fails)
BUILD_TASK_ID = "dbt_producer_watcher"

#: the settings, read once per process (a run in Airflow's test mode calls these ~100 times)
_settings = functools.cache(load_settings)


def attempt_of(context: Mapping[str, Any]) -> TaskAttempt:
    ti = context["ti"]
    return TaskAttempt(ti.dag_id, ti.run_id, ti.task_id, int(ti.try_number or 0),
                       logical_day(context))


def on_execute(context: Mapping[str, Any]) -> None:
    """Insert the attempt's `running` row."""
    started = getattr(context["ti"], "start_date", None) or datetime.now(UTC)
    _safely("start row", execution_log.record_start, _settings(), attempt_of(context),
            started)


def on_success(context: Mapping[str, Any]) -> None:
    _finish(context, "success")


def on_retry(context: Mapping[str, Any]) -> None:
    _finish(context, "up_for_retry")


def on_failure(context: Mapping[str, Any]) -> None:
    """Complete the row as failed, then alert with the error (and failed expectations),
    unless the task is a dbt group's build (see the module docstring)."""
    if is_watcher_build(context):  # the log row names the nodes dbt failed
        nodes = notifications.dbt_failures(context["ti"])
        _finish(context, "failed", [notifications.dbt_failure_line(n) for n in nodes])
        log.info("%s failed: its model and test tasks retry the failed nodes and alert if "
                 "they still fail", context["ti"].task_id)
        return
    _finish(context, "failed")
    exc = context.get("exception")
    alert = alerts.task_failure_alert(attempt_of(context), error_text(exc),
                                      gate_alert=getattr(exc, "gate_alert", None))
    _safely("webhook message", notifications.task_failed, context, alert)
    _safely("alert", alerts.publish_alert, _settings(), attempt_of(context), alert)


def is_watcher_build(context: Mapping[str, Any]) -> bool:
    """A dbt group's one `dbt build` (Cosmos' producer task in watcher mode)."""
    return str(context["ti"].task_id).rsplit(".", 1)[-1] == BUILD_TASK_ID


def error_text(exc: BaseException | str | None) -> str | None:
    if exc is None:
        return None
    if isinstance(exc, str):
        return exc
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def rows_affected(context: Mapping[str, Any]) -> int | None:
    """What the task pushed under XCom key `rows_affected`, else (a dbt model or test
    task in watcher mode) its node's rows as the group's build reported them."""
    ti = context["ti"]
    try:
        # a watcher node task's first try ran no dbt of its own: its rows are the build's
        first_watch = is_watcher_node_task(context) and int(ti.try_number or 1) == 1
        value = None if first_watch else ti.xcom_pull(task_ids=ti.task_id, key=ROWS_XCOM_KEY)
        if value is None:
            value = rows_reported_by_build(context)
    except Exception:  # an XCom lookup must not break the log row
        log.warning("could not read XCom %s of %s", ROWS_XCOM_KEY, ti.task_id, exc_info=True)
        return None
    return int(value) if isinstance(value, int | float) else None


def _finish(context: Mapping[str, Any], status: str, details: Sequence[str] = ()) -> None:
    ti = context["ti"]
    rows = rows_affected(context) if status == "success" else None
    error = None if status == "success" else error_text(context.get("exception"))
    if error and details:
        error = "; ".join([error, *details])
    _safely(f"{status} row", execution_log.record_end, _settings(), attempt_of(context),
            status, started_at=getattr(ti, "start_date", None), ended_at=datetime.now(UTC),
            rows_affected=rows, error_text=error)


def _safely(what: str, func: Any, *args: Any, **kwargs: Any) -> None:
    try:
        func(*args, **kwargs)
    except Exception as exc:
        log.error("pipeline callback could not write the %s: %s", what, exc, exc_info=True)
