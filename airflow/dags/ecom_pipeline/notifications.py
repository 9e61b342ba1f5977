"""Webhook messages from the DAG: a task that failed for good, a run past its deadline.

One call from each Airflow callback; `ecom.notifications` posts each failure once per day
(its dedupe ledger is `ops.notifications`, so retries and reruns in new processes do not
repeat it). A failed gate sends the gate's own message (`expectations.notify`: its failed
expectations with counts, and the dedupe key the CLI uses) plus the task's Airflow log;
any other task sends its error, the dbt nodes its dbt command failed (a test with its
count of failing rows, see `dbt_results`) and its attempts.

The deadline: the DAG's `DeadlineAlert` (Airflow 3's replacement of SLAs) calls
`deadline_missed` through a `SyncCallback` when a run is not finished
`ECOM_PIPELINE_DEADLINE_MINUTES` after it was queued; the scheduler runs it on the
executor with the run as JSON (`context["dag_run"]`), and drops the deadline of a run that
finished in time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from ecom.config import load_settings
from ecom.kafka_clients import produce_json
from ecom.notifications import Delivery, Notice, notify
from ecom_pipeline.days import logical_day
from ecom_pipeline.execution_log import clip_error
from expectations.notify import gate_notice

log = logging.getLogger(__name__)

#: XCom key of the dbt nodes a task's dbt command failed (pushed by `dbt_results`)
FAILURES_XCOM_KEY = "dbt_failures"
MAX_ERROR_CHARS = 600


def attempts_text(try_number: int, retries: int) -> str:
    if try_number > retries:
        return f"after {try_number} attempt{'s' if try_number > 1 else ''} (retries exhausted)"
    return f"on attempt {try_number} of {retries + 1} (not retried)"


def dbt_failure_line(node: Mapping[str, Any]) -> str:
    """`dbt test not_null_orders_id: fail, 3 failing rows: Got 3 results, ...`."""
    rows = node.get("failures")
    counted = f", {rows:,} failing row{'' if rows == 1 else 's'}" if isinstance(rows, int) \
        else ""
    message = f": {node['message']}" if node.get("message") else ""
    return f"dbt {node.get('kind')} {node.get('name')}: {node.get('status')}{counted}{message}"


def task_notice(alert: Mapping[str, Any], *, retries: int,
                dbt_failures: Sequence[Mapping[str, Any]] = (),
                links: Sequence[tuple[str, str]] = ()) -> Notice:
    """The message of a (non-gate) task that failed for good, from its alert payload."""
    day = date.fromisoformat(alert["logical_date"]) if alert.get("logical_date") else None
    task, dag = alert["task_id"], alert["dag_id"]
    title = (f"Task {task} of {dag} FAILED for {day or 'its run'} "
             f"{attempts_text(int(alert.get('try_number') or 1), retries)}")
    details = [dbt_failure_line(node) for node in dbt_failures]
    error = clip_error(alert.get("error")) or "no error text"
    if len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + " ..."
    details.append(f"error: {error}")
    return Notice("task_failed", f"{dag}.{task}", day, title, tuple(details), tuple(links))


def _where_to_look(ti: Any, run_id: str) -> list[tuple[str, str]]:
    links = []
    try:
        links.append(("Airflow task log", str(ti.log_url)))
    except Exception:  # the URL is a convenience; the message goes out without it
        log.warning("no Airflow log URL for %s", getattr(ti, "task_id", "?"), exc_info=True)
    links.append(("task attempts", f"ops.pipeline_execution_logs where run_id = '{run_id}'"))
    return links


def dbt_failures(ti: Any) -> list[Mapping[str, Any]]:
    """The dbt nodes the task's dbt command failed (`dbt_results`), [] if none or unknown."""
    try:
        value = ti.xcom_pull(task_ids=ti.task_id, key=FAILURES_XCOM_KEY)
    except Exception:  # a missing XCom must not stop the message
        log.warning("could not read XCom %s of %s", FAILURES_XCOM_KEY, ti.task_id,
                    exc_info=True)
        return []
    return list(value) if isinstance(value, list) else []


def task_failed(context: Mapping[str, Any], alert: Mapping[str, Any]) -> Delivery:
    """The failure callback's webhook message (one per task, or gate, and day)."""
    ti = context["ti"]
    links = _where_to_look(ti, str(alert.get("dag_run_id")))
    if alert.get("kind") == "data_quality_alert":
        notice = gate_notice(alert, links=links)
    else:
        retries = int(getattr(getattr(ti, "task", None), "retries", 0) or 0)
        notice = task_notice(alert, retries=retries, dbt_failures=dbt_failures(ti),
                             links=links)
    delivery = notify(load_settings(), notice)
    log.info("%s: %s", notice.dedupe_key, delivery.describe())
    return delivery


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime) or value is None:
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def deadline_notice(dag_run: Mapping[str, Any], deadline: Mapping[str, Any],
                    base_url: str, minutes: float) -> Notice:
    """The message of a run not finished by its deadline (`dag_run`: Airflow's JSON)."""
    dag_id, run_id = dag_run["dag_id"], dag_run.get("dag_run_id") or dag_run.get("run_id")
    times = {k: _when(dag_run.get(k)) for k in ("logical_date", "data_interval_start",
                                                 "queued_at", "start_date")}
    start = times["logical_date"] or times["data_interval_start"]
    day = logical_day({"logical_date": start}) if start else None
    title = (f"Daily pipeline {dag_id} NOT FINISHED by its deadline for {day or 'its run'}: "
             f"still {dag_run.get('state', 'running')} {minutes:g} min after it was queued")
    details = [f"run {run_id}: queued {times['queued_at'] or '-'}, started "
               f"{times['start_date'] or '-'}, deadline {deadline.get('deadline_time') or '-'}"]
    links = [("Airflow run", f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{run_id}"),
             ("task attempts", f"ops.pipeline_execution_logs where run_id = '{run_id}'")]
    return Notice("deadline_missed", dag_id, day, title, tuple(details), tuple(links))


def deadline_alert(minutes: float) -> Any:
    """The DAG's DeadlineAlert: `deadline_missed` when a run is not finished `minutes` after
    it was queued; None for 0. Only a scheduler evaluates deadlines: `ecom pipeline run`
    (`airflow dags test`'s way) keeps the alert, so its runs share the scheduler's DAG
    version, and works around Airflow 3.3.2's crash at the end of a successful test run of
    a DAG that has one (apache/airflow#73428; `ecom_app.local_airflow.dag_test`)."""
    if not minutes:
        return None
    from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback

    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
                         interval=timedelta(minutes=minutes),
                         callback=SyncCallback(deadline_missed), name="pipeline_deadline")


def deadline_missed(context: Mapping[str, Any], **_: Any) -> None:
    """`SyncCallback` of the DAG's DeadlineAlert: the webhook message, and an alert on
    `data-quality-alerts` like every other pipeline failure."""
    from airflow.configuration import conf

    settings = load_settings()
    base_url = conf.get("api", "base_url", fallback="http://localhost:8080")
    notice = deadline_notice(context["dag_run"], context.get("deadline") or {}, base_url,
                             settings.pipeline_deadline_minutes)
    delivery = notify(settings, notice)
    log.warning("%s: %s", notice.title, delivery.describe())
    alert = {"kind": "pipeline_deadline_missed", "source": "airflow",
             "dag_id": notice.subject, "dag_run_id": context["dag_run"].get("dag_run_id"),
             "logical_date": notice.logical_date.isoformat() if notice.logical_date else None,
             "deadline_minutes": settings.pipeline_deadline_minutes, "title": notice.title}
    day = alert["logical_date"] or "-"
    produce_json(settings, settings.topic_alerts, [(f"{notice.subject}|{day}|deadline", alert)],
                 client_id="ecom-airflow")
