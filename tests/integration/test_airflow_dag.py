"""The pipeline DAG `ecommerce_analytics_pipeline`.

- Structure: the DAG file parsed by Airflow in a fresh process: no import errors, the
  tasks in pipeline order, each Cosmos group one task per dbt model (+ its tests) as in
  dbt's manifest, retries/timeouts/callbacks on every task.
- End to end (slow): one simulated day in Kafka, `airflow dags test` through the real
  Spark, dbt, Great Expectations and Airflow: every task succeeds, the marts reconcile with
  the simulator's manifest, every task has its execution-log row, the day's aggregations
  are on their topic, the run has its report row.
- Corrupted raw (slow): gate_raw fails, everything after it ends upstream_failed, and the
  execution log and the alert on data-quality-alerts name the failed expectation.

The runs use a stack of their own (not the session's shared one): a DAG run rebuilds every
mart and tests all of them, so other tests' deliberate corruption must not reach it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from ecom_pipeline import DAG_ID
from ecom_pipeline.manifest import manifest_path
from ecom_pipeline.publish import message_key

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ecom_app.local_airflow import DAGS_FOLDER
from ecom_app.local_airflow.airflow_home import airflow_env
from ecom_app.local_airflow.manifest import ensure_manifest
from tests.conftest import private_stack, run_ecom

pytestmark = pytest.mark.integration

PIPELINE_ORDER = ["extract", "gate_raw", "transform_staging", "gate_staging",
                  "transform_marts", "gate_marts", "publish", "report"]
GROUP_TAGS = {"transform_staging": {"staging", "intermediate"}, "transform_marts": {"marts"}}
DAY = date(2024, 3, 5)
CORRUPT_DAY = date(2024, 3, 9)


# ---------------------------------------------------------------- structure ------------

@pytest.fixture(scope="module")
def dag_shape(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The DAG as Airflow parses it, described by `ecom_app.local_airflow.dag_shape`
    (a fresh process)."""
    settings = Settings.from_env({k: v for k, v in os.environ.items()
                                  if not k.startswith("ECOM_")})
    ensure_manifest(settings)
    env = airflow_env(settings)
    env["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow-parse"))
    proc = subprocess.run([sys.executable, "-m", "ecom_app.local_airflow.dag_shape"], env=env,
                          cwd=REPO_ROOT, text=True, capture_output=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])


@pytest.fixture(scope="module")
def dbt_manifest() -> dict[str, Any]:
    return json.loads(manifest_path(REPO_ROOT / "dbt_project").read_text())


def _upstream(shape: dict[str, Any]) -> dict[str, set[str]]:
    return {t["task_id"]: set(t["upstream"]) for t in shape["tasks"]}


def _ancestors(task_id: str, upstream: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(upstream[task_id])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(upstream[current])
    return seen


def test_dag_parses_without_import_errors(dag_shape: dict[str, Any]) -> None:
    assert dag_shape["import_errors"] == {}
    assert dag_shape["dag_ids"] == [DAG_ID, "ecommerce_maintenance"]
    assert "airflow" in (DAGS_FOLDER / f"{DAG_ID}.py").read_text()  # Airflow's safe-mode heuristic
    assert not (REPO_ROOT / "airflow" / "__init__.py").exists()  # never shadow apache-airflow


def test_dag_runs_daily_at_two_without_catchup(dag_shape: dict[str, Any]) -> None:
    assert dag_shape["timetable"] == "CronDataIntervalTimetable"
    assert "0 2 * * *" in dag_shape["schedule"]
    assert dag_shape["catchup"] is False
    assert dag_shape["max_active_runs"] == 1


def test_tasks_run_in_pipeline_order(dag_shape: dict[str, Any]) -> None:
    upstream = _upstream(dag_shape)
    stages: dict[str, list[str]] = defaultdict(list)
    for task_id in upstream:
        stages[task_id.split(".")[0]].append(task_id)
    assert set(stages) == set(PIPELINE_ORDER)
    for earlier, later in pairwise(PIPELINE_ORDER):
        for task_id in stages[later]:  # every task of a stage waits for the whole stage before
            assert set(stages[earlier]) <= _ancestors(task_id, upstream), (earlier, task_id)
    assert upstream["extract"] == set()
    assert upstream["report"] == {"publish"}


def test_every_task_retries_times_out_and_logs(dag_shape: dict[str, Any]) -> None:
    for task in dag_shape["tasks"]:
        assert task["retries"] == 2, task["task_id"]
        assert task["retry_exponential_backoff"] > 1, task["task_id"]
        assert task["execution_timeout_s"], task["task_id"]
        assert all(task["callbacks"].values()), task["task_id"]


def test_cosmos_groups_hold_one_task_per_dbt_model_and_its_tests(
        dag_shape: dict[str, Any], dbt_manifest: dict[str, Any]) -> None:
    nodes = dbt_manifest["nodes"]
    models = {uid: n for uid, n in nodes.items() if n["resource_type"] == "model"}
    tests = [n for n in nodes.values() if n["resource_type"] == "test"]
    task_ids = {t["task_id"] for t in dag_shape["tasks"]}
    multi_parent_placed: set[str] = set()
    for group, tags in GROUP_TAGS.items():
        in_group = {uid for uid, n in models.items() if set(n["tags"]) & tags}
        assert in_group, f"no dbt model tagged {tags}"
        expected = {f"{group}.{models[uid]['name']}.run" for uid in in_group}
        for uid in in_group:
            if any(t["depends_on"]["nodes"] == [uid] for t in tests):
                expected.add(f"{group}.{models[uid]['name']}.test")
        detached = set()
        for test in tests:
            parents = set(test["depends_on"]["nodes"]) & set(models)
            if len(parents) > 1 and parents & in_group and group == "transform_marts":
                detached.add(f"{group}.{test['name']}_test")
                multi_parent_placed.add(test["unique_id"])
        actual = {t for t in task_ids if t.startswith(f"{group}.")}
        assert actual == expected | detached, group
    # each test reading several models runs once, in the marts group, after all its parents
    multi = {t["unique_id"] for t in tests
             if len(set(t["depends_on"]["nodes"]) & set(models)) > 1}
    assert multi == multi_parent_placed
    assert not [t for t in task_ids if t.startswith("transform_staging.") and
                t.endswith("_test")]


# ---------------------------------------------------------------- end to end -----------

@pytest.fixture(scope="module")
def pipeline_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with private_stack(tmp_path_factory, "ecom-airflow-stack") as settings:
        yield settings


@pytest.fixture(scope="module")
def simulated_day(pipeline_stack: Settings) -> Any:
    """One day of shop traffic in Kafka, with a few malformed and re-sent messages."""
    from simulator.manifest import load_manifest

    path = pipeline_stack.manifest_dir / "airflow-e2e.json"
    run_ecom(pipeline_stack, "simulate", "backfill", "--days", "1", "--end-date",
             DAY.isoformat(), "--events-per-day", "4000", "--seed", "20240305",
             "--bad-rate", "0.01", "--manifest", str(path), "--no-progress")
    return load_manifest(path)


@pytest.fixture(scope="module")
def pipeline_run(pipeline_stack: Settings, simulated_day: Any) -> Any:
    from ecom_app.local_airflow.runner import run_day

    return run_day(pipeline_stack, DAY)


def _query(settings: Settings, role: str, sql: str, *args: object) -> list[tuple]:
    with connect(settings, role) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def _topic_messages(settings: Settings, topic: str) -> list[tuple[str, dict[str, Any]]]:
    """Every message of a topic (manual assignment, no consumer group), as (key, JSON)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": "airflow-dag-test", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        out: list[tuple[str, dict[str, Any]]] = []
        for partition in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                     timeout=10)
            if high <= 0:
                continue
            consumer.assign([TopicPartition(topic, partition, 0)])
            got = 0
            while got < high:
                for msg in consumer.consume(500, timeout=5):
                    if msg.error():
                        raise AssertionError(msg.error())
                    out.append((msg.key().decode(), json.loads(msg.value())))
                    got = msg.offset() + 1
        return out
    finally:
        consumer.close()


@pytest.mark.slow
@pytest.mark.spark
def test_pipeline_run_succeeds_on_every_task(pipeline_run: Any) -> None:
    states = {t.task_id: t.state for t in pipeline_run.tasks}
    assert pipeline_run.state == "success", [t for t in pipeline_run.tasks
                                             if t.state != "success"]
    assert states and set(states.values()) == {"success"}
    assert {t.split(".")[0] for t in states} == set(PIPELINE_ORDER)


@pytest.mark.slow
@pytest.mark.spark
def test_marts_reconcile_with_the_simulator_manifest(
        pipeline_stack: Settings, simulated_day: Any, pipeline_run: Any) -> None:
    day = DAY.isoformat()
    raw = dict(_query(pipeline_stack, "loader",
                      """select event_type, count(*) from raw.raw_events
                          where (event_timestamp at time zone 'UTC')::date = %s
                          group by event_type""", DAY))
    expected_types = {k: v for k, v in simulated_day.events_by_day_type[day].items() if v}
    assert raw == expected_types
    marts = dict(_query(pipeline_stack, "reader",
                        """select event_type, sum(total_events)::bigint
                             from analytics.daily_aggregations where date = %s
                            group by event_type""", DAY))
    assert marts == expected_types
    revenue = dict(_query(pipeline_stack, "reader",
                          """select category, sum(total_revenue)
                               from analytics.daily_aggregations
                              where date = %s and event_type = 'purchase'
                              group by category""", DAY))
    expected_revenue = {c: Decimal(v) for c, v in
                        simulated_day.revenue_by_day_category[day].items()}
    assert revenue == expected_revenue
    assert sum(revenue.values()) == Decimal(simulated_day.revenue_by_day[day])


@pytest.mark.slow
@pytest.mark.spark
def test_every_task_has_its_execution_log_row(pipeline_stack: Settings,
                                              pipeline_run: Any) -> None:
    rows = _query(pipeline_stack, "loader",
                  """select task_id, status, started_at, ended_at, duration_s, rows_affected,
                            logical_date
                       from ops.pipeline_execution_logs where dag_id = %s and run_id = %s""",
                  DAG_ID, pipeline_run.run_id)
    by_task = {r[0]: r for r in rows}
    assert set(by_task) == {t.task_id for t in pipeline_run.tasks}
    assert len(rows) == len(by_task)  # one attempt each: nothing needed a retry
    for task_id, status, started, ended, duration, _, logical_date in rows:
        assert status == "success", task_id
        assert started is not None and ended is not None and ended >= started, task_id
        assert duration is not None and duration >= 0, task_id
        assert logical_date == DAY, task_id
    assert by_task["extract"][5] > 0
    published = by_task["publish"][5]
    aggregation_rows = _query(pipeline_stack, "reader",
                              "select count(*) from analytics.daily_aggregations "
                              "where date = %s", DAY)[0][0]
    assert published == aggregation_rows > 0


@pytest.mark.slow
@pytest.mark.spark
def test_the_days_aggregations_are_published(pipeline_stack: Settings,
                                             pipeline_run: Any) -> None:
    from psycopg2.extras import RealDictCursor

    with connect(pipeline_stack, "reader") as conn, \
            conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute("select * from analytics.daily_aggregations where date = %s", (DAY,))
        rows = {message_key(r): r for r in cur.fetchall()}
    messages = [(k, v) for k, v in _topic_messages(pipeline_stack, pipeline_stack.topic_daily)
                if k.startswith(f"{DAY.isoformat()}|")]
    assert sorted(k for k, _ in messages) == sorted(rows)  # each row once, by its key
    for key, value in messages:
        assert value["published_run_id"] == pipeline_run.run_id
        assert value["total_events"] == rows[key]["total_events"]
        assert Decimal(str(value["total_revenue"])) == rows[key]["total_revenue"]
    assert not [v for _, v in _topic_messages(pipeline_stack, pipeline_stack.topic_alerts)
                if v.get("dag_run_id") == pipeline_run.run_id]


@pytest.mark.slow
@pytest.mark.spark
def test_the_run_has_its_report_row(pipeline_stack: Settings, simulated_day: Any,
                                    pipeline_run: Any) -> None:
    rows = _query(pipeline_stack, "loader",
                  """select logical_date, status, raw_events, total_events, total_revenue,
                            aggregation_rows, published_messages, gates
                       from ops.pipeline_run_reports where dag_id = %s and run_id = %s""",
                  DAG_ID, pipeline_run.run_id)
    assert len(rows) == 1
    logical_date, status, raw_events, total_events, revenue, agg_rows, published, gates = rows[0]
    day = DAY.isoformat()
    assert (logical_date, status) == (DAY, "success")
    assert raw_events == total_events == simulated_day.events_by_day[day]
    assert revenue == Decimal(simulated_day.revenue_by_day[day])
    assert published == agg_rows > 0
    assert {layer: g["success"] for layer, g in gates.items()} == {
        "raw": True, "staging": True, "marts": True}


@pytest.mark.slow
@pytest.mark.spark
def test_corrupted_raw_fails_gate_raw_and_stops_the_pipeline(pipeline_stack: Settings,
                                                             tmp_path: Path) -> None:
    from ecom_app.local_airflow.runner import task_states

    _land_corrupted_events(pipeline_stack, CORRUPT_DAY)
    proc = run_ecom(pipeline_stack, "pipeline", "run", "--date", CORRUPT_DAY.isoformat(),
                    check=False, timeout=900)
    assert proc.returncode != 0
    assert "The pipeline failed for 2024-03-09" in proc.stderr
    assert "gate_raw" in proc.stdout

    run_id = _query(pipeline_stack, "loader",
                    """select run_id from ops.pipeline_execution_logs
                        where dag_id = %s and logical_date = %s and task_id = 'gate_raw'""",
                    DAG_ID, CORRUPT_DAY)[0][0]
    states = {t["task_id"]: t["state"] for t in task_states(pipeline_stack, run_id)}
    assert states["extract"] == "success"
    assert states["gate_raw"] == "failed"
    after = {t: s for t, s in states.items() if t not in ("extract", "gate_raw")}
    assert any(t.startswith("transform_staging.") for t in after)
    assert any(t.startswith("transform_marts.") for t in after)
    assert set(after.values()) == {"upstream_failed"}, after

    logs = _query(pipeline_stack, "loader",
                  """select task_id, status, try_number, error_text
                       from ops.pipeline_execution_logs where run_id = %s""", run_id)
    assert sorted((t, s) for t, s, _, _ in logs) == [("extract", "success"),
                                                     ("gate_raw", "failed")]
    gate_error = next(e for t, _, _, e in logs if t == "gate_raw")
    assert "raw gate FAILED" in gate_error and "event_type" in gate_error
    assert next(n for t, _, n, _ in logs if t == "gate_raw") == 1  # a failed gate: no retry

    alerts = [v for _, v in _topic_messages(pipeline_stack, pipeline_stack.topic_alerts)
              if v.get("dag_run_id") == run_id]
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert["task_id"], alert["layer"], alert["logical_date"]) == (
        "gate_raw", "raw", CORRUPT_DAY.isoformat())
    assert "event_type" in {entry["column"] for entry in alert["failed"]}


def _land_corrupted_events(settings: Settings, day: date, n: int = 25) -> None:
    """Rows a broken loader could write: the schema accepts them, the raw contract does not
    (event_type outside the five known ones)."""
    import uuid

    with connect(settings, "loader") as conn, conn.cursor() as cur:
        for i in range(n):
            event_id = str(uuid.uuid4())
            ts = f"{day.isoformat()}T12:{i:02d}:00Z"
            payload = {"event_id": event_id, "user_id": f"u{i}", "session_id": f"s{i}",
                       "event_type": "teleport", "event_timestamp": ts}
            cur.execute(
                """insert into raw.raw_events (event_id, user_id, session_id, event_type,
                       event_timestamp, raw_data, kafka_topic, kafka_partition, kafka_offset)
                   values (%s, %s, %s, 'teleport', %s, %s, 'corrupted-by-test', 0, %s)""",
                (event_id, f"u{i}", f"s{i}", ts, json.dumps(payload), i),
            )
        conn.commit()


@pytest.mark.slow
def test_airflow_up_serves_the_dag_and_down_stops_it(pipeline_stack: Settings) -> None:
    import urllib.request

    from ecom.ports import free_port, pid_alive

    settings = pipeline_stack.replace(airflow_port=free_port())
    up_run = run_ecom(settings, "airflow", "up", timeout=600)
    try:
        url = f"http://127.0.0.1:{settings.airflow_port}"
        assert url in up_run.stdout
        login = next(ln for ln in up_run.stdout.splitlines() if ln.startswith("login:"))
        user, password = (p.strip() for p in login.removeprefix("login:").split("/", 1))
        request = urllib.request.Request(
            f"{url}/auth/token", data=json.dumps({"username": user, "password": password})
            .encode(), headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            token = json.loads(response.read())["access_token"]
        request = urllib.request.Request(f"{url}/api/v2/dags/{DAG_ID}",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            dag = json.loads(response.read())
        assert dag["dag_id"] == DAG_ID and dag["is_paused"] is True
        again = run_ecom(settings, "airflow", "up", timeout=120)  # idempotent
        assert url in again.stdout
    finally:
        pid_file = settings.data_dir / "airflow" / "standalone.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        down_run = run_ecom(settings, "airflow", "down", timeout=120)
    assert "stopped Airflow" in down_run.stdout
    assert pid is not None and not pid_alive(pid)
    assert "not running" in run_ecom(settings, "airflow", "down").stdout
