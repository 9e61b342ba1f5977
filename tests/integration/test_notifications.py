"""Notifications that reach a person, and the warehouse exporter, on a stack of their own.

A real HTTP receiver (a server on a free port, standing in for Slack) collects what the
project posts to ECOM_ALERT_WEBHOOK_URL:
- the dedupe ledger (`ops.notifications`): one message per failure and day, from any
  number of processes; a failed post is retried by the next occurrence; with the warehouse
  down the message still goes out;
- a failing gate run twice from the CLI (`ecom quality check`): one message, naming the
  failed expectations with their counts, the day and where to look; `ecom metrics serve`
  then shows the failure, and Prometheus (`ecom metrics prometheus`) fires its alert;
- through Airflow (`airflow dags test`, as `ecom pipeline run` drives it): a task failing
  for good after its retries, and a failing gate, each one message with the Airflow log;
- the real scheduler (`ecom airflow up`): a run not finished by the DAG's deadline.

Own stack: these tests land deliberately corrupted rows that others must not see.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ecom.notifications import Notice, notify
from ecom.ports import free_port
from tests.conftest import ECOM, private_stack, run_ecom
from tests.integration.test_airflow_dag import _land_corrupted_events
from tests.integration.test_security import _attempt
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

GATE_DAY = date(2024, 5, 14)  # corrupted raw rows, gate run from the CLI
TASK_DAY = date(2024, 5, 15)  # the DAG's extract fails (its topic does not exist)
DAG_GATE_DAY = date(2024, 5, 16)  # the DAG's raw gate fails (no events that day)
DEADLINE_DAY = date(2024, 5, 17)  # a run of the paused DAG misses its deadline


@pytest.fixture(scope="module")
def notify_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with private_stack(tmp_path_factory, "ecom-notify-stack") as settings:
        yield settings


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def ledger(settings: Settings, key: str) -> tuple[Any, ...] | None:
    with connect(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute("select status, attempts, occurrences, error_text, sent_at is not null "
                    "from ops.notifications where dedupe_key = %s", (key,))
        return cur.fetchone()


# ---- the dedupe ledger ----------------------------------------------------------------------
def test_one_message_per_failure_and_day_and_a_failed_post_is_retried(
        notify_stack: Settings, receiver: Receiver) -> None:
    settings = notify_stack.replace(alert_webhook_url=receiver.url)
    notice = Notice("task_failed", "ledger-test.extract", date(2024, 5, 1),
                    "Task extract FAILED for 2024-05-01", ("error: boom",))
    receiver.fail_next = 1
    first = notify(settings, notice)
    assert first.status == "failed" and "HTTP 500" in first.detail
    assert "secret" not in first.detail  # the URL is a secret: never in a message
    assert ledger(settings, notice.dedupe_key)[:2] == ("failed", 1)
    # the next occurrence (a rerun, another process) retries, then it is sent once
    assert notify(settings, notice).status == "sent"
    with ThreadPoolExecutor(4) as pool:  # four processes' worth of repeats at once
        repeats = list(pool.map(lambda _: notify(settings, notice).status, range(4)))
    assert repeats == ["duplicate"] * 4
    assert len(receiver.about("Task extract FAILED for 2024-05-01")) == 1
    assert receiver.refused == 1
    status, attempts, occurrences, error, sent = ledger(settings, notice.dedupe_key)
    assert (status, attempts, occurrences, sent) == ("sent", 2, 6, True)
    assert error is None
    # another day is another failure
    other = Notice(notice.kind, notice.subject, date(2024, 5, 2), "Task extract FAILED for "
                   "2024-05-02")
    assert notify(settings, other).status == "sent"
    assert len(receiver.messages) == 2


def test_with_the_warehouse_down_the_message_still_goes_out(notify_stack: Settings,
                                                            receiver: Receiver) -> None:
    settings = notify_stack.replace(alert_webhook_url=receiver.url, pg_port=free_port())
    delivery = notify(settings, Notice("task_failed", "no-db", None, "PostgreSQL is down"))
    assert delivery.status == "sent" and "not recorded" in delivery.detail
    assert len(receiver.about("PostgreSQL is down")) == 1


# ---- the monitor role -----------------------------------------------------------------------
def test_the_monitor_role_reads_ops_and_statistics_and_nothing_else(
        notify_stack: Settings) -> None:
    denied, read_only = "42501", "25006"
    with connect(notify_stack, "transformer") as conn, conn.cursor() as cur:
        cur.execute("create table if not exists analytics.monitor_probe (x int)")
    for allowed in ("select count(*) from ops.ingest_batches",
                    "select * from ops.source_freshness",
                    "select * from ops.notifications",
                    "select count(*) from pg_stat_activity"):
        assert _attempt(notify_stack, "monitor", allowed) is None, allowed
    assert _attempt(notify_stack, "monitor", "select count(*) from raw.raw_events") == denied
    assert _attempt(notify_stack, "monitor",
                    "select count(*) from analytics.monitor_probe") == denied
    # its sessions are read-only, and past that it has no privilege to write either
    for write in ("create table ops.m (x int)", "delete from ops.notifications"):
        assert _attempt(notify_stack, "monitor", write) == read_only, write
        assert _attempt(notify_stack, "monitor", write, read_write=True) == denied, write
    # other roles' statement texts: the monitor reads them (pg_read_all_stats), the loader not
    with connect(notify_stack, "loader") as conn, conn.cursor() as cur:
        cur.execute("select count(*) from ops.ingest_epochs where kafka_epoch >= 0")
    with connect(notify_stack, "monitor") as conn, conn.cursor() as cur:
        cur.execute("select role_name, query from ops.top_statements "
                    "where query like '%%ops.ingest_epochs where kafka_epoch%%'")
        assert ("loader", "select count(*) from ops.ingest_epochs where kafka_epoch >= $1") \
            in cur.fetchall()
        cur.execute("select count(*) from ops.top_statements where query ~* 'password'")
        assert cur.fetchone()[0] == 0
    with connect(notify_stack, "loader") as conn, conn.cursor() as cur:
        cur.execute("select distinct query from ops.top_statements where role_name = 'monitor'")
        assert cur.fetchall() == [("<insufficient privilege>",)]


# ---- a failing gate from the CLI, and the exporter -----------------------------------------
def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_failing_gate_sends_one_message_and_the_exporter_shows_it(
        notify_stack: Settings, receiver: Receiver) -> None:
    settings = notify_stack.replace(alert_webhook_url=receiver.url)
    _land_corrupted_events(settings, GATE_DAY)
    outputs = []
    for _ in range(2):  # the same gate failing twice that day (two processes)
        proc = run_ecom(settings, "quality", "check", "raw", "--date", GATE_DAY.isoformat(),
                        check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    assert "webhook message sent" in outputs[0]
    assert "webhook message already sent for this failure and day" in outputs[1]

    [message] = receiver.messages
    title = message["blocks"][0]["text"]["text"]
    assert title.startswith(f"raw quality gate FAILED for {GATE_DAY}: ")
    details = message["blocks"][1]["text"]["text"]
    assert "expect_column_values_to_be_in_set(event_type): 25 of 25 rows unexpected" in details
    assert "'teleport'" in details
    where = message["blocks"][-1]["elements"][0]["text"]
    assert "ops.data_quality_logs where run_id = 'raw-2024-05-14-" in where
    assert message["text"].splitlines()[0] == title
    assert ledger(settings, f"quality_gate|raw|{GATE_DAY}")[:3] == ("sent", 1, 2)

    port = free_port()
    exporter = subprocess.Popen([*ECOM, "metrics", "serve", "--port", str(port)],
                                cwd=REPO_ROOT, env=settings.subprocess_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                samples = scrape(f"http://127.0.0.1:{port}/metrics")
                break
            except OSError:
                assert exporter.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
    finally:
        exporter.terminate()
        output, _ = exporter.communicate(timeout=30)
    labels = (("layer", "raw"), ("logical_date", GATE_DAY.isoformat()))
    assert samples[("ecom_quality_gate_success", labels)] == 0
    assert samples[("ecom_quality_gate_failed_expectations", labels)] >= 1
    assert samples[("ecom_notifications", (("kind", "quality_gate"), ("status", "sent")))] == 1
    assert samples[("ecom_pg_up", ())] == 1 and samples[("ecom_kafka_up", ())] == 1
    assert {v for (n, _), v in samples.items() if n == "ecom_exporter_query_ok"} == {1}
    assert samples[("ecom_pg_stat_statements_available", ())] == 1
    assert any(n == "ecom_pg_top_statement_exec_seconds" for n, _ in samples)
    assert not any("password" in str(labels).lower() for _, labels in samples)
    assert "warehouse exporter: http://127.0.0.1:" in output and "monitor" in output

    # Debian's Prometheus with the project's rules, scraping the exporter: the alert fires
    local = settings.replace(prometheus_port=free_port(), exporter_port=free_port())
    prometheus = subprocess.Popen([*ECOM, "metrics", "prometheus", "--interval", "1"],
                                  cwd=REPO_ROOT, env=local.subprocess_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    firing: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 90
        while not firing and time.monotonic() < deadline:
            assert prometheus.poll() is None, prometheus.communicate()[0]
            time.sleep(1)
            try:
                alerts = json.loads(urllib.request.urlopen(
                    f"http://127.0.0.1:{local.prometheus_port}/api/v1/alerts", timeout=10
                ).read())["data"]["alerts"]
            except OSError:
                continue
            firing = [a for a in alerts if a["labels"]["alertname"] == "QualityGateFailed"
                      and a["state"] == "firing"]
    finally:
        prometheus.terminate()
        prometheus.communicate(timeout=60)
    assert prometheus.returncode == 0
    assert [(a["labels"]["layer"], a["labels"]["logical_date"]) for a in firing] == [
        ("raw", GATE_DAY.isoformat())]
    assert firing[0]["annotations"]["summary"] == (
        f"The raw quality gate failed for {GATE_DAY}")


# ---- through Airflow -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.spark
def test_a_task_failing_for_good_in_the_dag_sends_one_message(
        notify_stack: Settings, receiver: Receiver) -> None:
    from ecom_app.local_airflow.runner import run_day

    # extract reads a topic that does not exist: it fails on every attempt (3 with retries)
    settings = notify_stack.replace(alert_webhook_url=receiver.url,
                                    topic_events="no-such-topic")
    run = run_day(settings, TASK_DAY)
    states = {t.task_id: t for t in run.tasks}
    assert run.state == "failed" and states["extract"].state == "failed"
    assert states["extract"].try_number == 3
    [message] = receiver.messages  # not one per attempt: once, when the retries ran out
    title = message["blocks"][0]["text"]["text"]
    assert title == (f"Task extract of ecommerce_analytics_pipeline FAILED for {TASK_DAY} "
                     "after 3 attempts (retries exhausted)")
    details = message["blocks"][1]["text"]["text"]
    assert "Topic no-such-topic does not exist" in details
    where = message["blocks"][-1]["elements"][0]["text"]
    base = f"http://127.0.0.1:{settings.airflow_port}/dags/ecommerce_analytics_pipeline/runs/"
    assert f"<{base}" in where and "/tasks/extract" in where and "|Airflow task log>" in where
    assert f"ops.pipeline_execution_logs where run_id = '{run.run_id}'" in where
    key = f"task_failed|ecommerce_analytics_pipeline.extract|{TASK_DAY}"
    assert ledger(settings, key)[:3] == ("sent", 1, 1)


@pytest.mark.slow
@pytest.mark.spark
def test_a_gate_failing_in_the_dag_sends_one_message_with_its_airflow_log(
        notify_stack: Settings, receiver: Receiver) -> None:
    from ecom_app.local_airflow.runner import run_day

    settings = notify_stack.replace(alert_webhook_url=receiver.url)
    run = run_day(settings, DAG_GATE_DAY)  # a day without events: the raw gate fails
    states = {t.task_id: t.state for t in run.tasks}
    assert (states["extract"], states["gate_raw"]) == ("success", "failed")
    [message] = receiver.messages
    title = message["blocks"][0]["text"]["text"]
    assert title.startswith(f"raw quality gate FAILED for {DAG_GATE_DAY}: ")
    assert "raw_events: expect_table_row_count_to_be_between: observed 0" in \
        message["blocks"][1]["text"]["text"]
    where = message["blocks"][-1]["elements"][0]["text"]
    assert "/tasks/gate_raw" in where and "|Airflow task log>" in where
    assert "ops.data_quality_logs where run_id = 'raw-2024-05-16-" in where
    assert ledger(settings, f"quality_gate|raw|{DAG_GATE_DAY}")[:3] == ("sent", 1, 1)


def _api(url: str, token: str | None, path: str, body: dict[str, Any] | None = None,
         method: str = "GET") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_a_run_not_finished_by_its_deadline_sends_one_message(
        notify_stack: Settings, receiver: Receiver) -> None:
    """The real scheduler: the DAG's DeadlineAlert (here 3 s after the run is queued) on a
    run that stays queued (the DAG is paused) calls `deadline_missed` on the executor."""
    settings = notify_stack.replace(alert_webhook_url=receiver.url, airflow_port=free_port(),
                                    pipeline_deadline_minutes=0.05)
    up_run = run_ecom(settings, "airflow", "up", timeout=600)
    try:
        url = f"http://127.0.0.1:{settings.airflow_port}"
        login = next(ln for ln in up_run.stdout.splitlines() if ln.startswith("login:"))
        user, password = (p.strip() for p in login.removeprefix("login:").split("/", 1))
        token = _api(url, None, "/auth/token", {"username": user, "password": password},
                     "POST")["access_token"]
        run = _api(url, token, "/api/v2/dags/ecommerce_analytics_pipeline/dagRuns",
                   {"logical_date": f"{DEADLINE_DAY.isoformat()}T02:00:00Z"}, "POST")
        deadline = time.monotonic() + 300
        while not receiver.messages and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        run_ecom(settings, "airflow", "down", timeout=120)
    [message] = receiver.messages
    title = message["blocks"][0]["text"]["text"]
    assert title.startswith("Daily pipeline ecommerce_analytics_pipeline NOT FINISHED by its "
                            f"deadline for {DEADLINE_DAY}: still queued 0.05 min after")
    where = message["blocks"][-1]["elements"][0]["text"]
    assert f"<{url}/dags/ecommerce_analytics_pipeline/runs/{run['dag_run_id']}|Airflow run>" \
        in where
    key = f"deadline_missed|ecommerce_analytics_pipeline|{DEADLINE_DAY}"
    assert ledger(settings, key)[:3] == ("sent", 1, 1)
