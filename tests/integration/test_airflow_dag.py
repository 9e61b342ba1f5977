"""The pipeline DAG `ecommerce_analytics_pipeline`.

- Structure: the DAG file parsed by Airflow in a fresh process: no import errors, the
  tasks in pipeline order, each Cosmos group one task per dbt model (+ its tests) as in
  dbt's manifest plus its one `dbt build`, which runs before them and covers every test
  once across the two groups; retries/timeouts/callbacks on every task.
- End to end (slow): one simulated day in Kafka, one DAG run in Airflow's test mode
  through the real Spark, dbt, Great Expectations and Airflow: every task succeeds, the
  marts reconcile with the simulator's manifest, every task has its execution-log row, the
  day's aggregations are on their topic, the run has its report row.
- Corrupted raw (slow): gate_raw fails, everything after it ends upstream_failed, and the
  execution log and the alert on data-quality-alerts name the failed expectation.
- A model failing in the build (slow): its task retries that model alone, then its tests',
  and the run goes on.
- `ecom airflow up` afterwards (slow): the runs' real start and duration, one DAG version.

The runs use a stack of their own (not the session's shared one): a DAG run rebuilds every
mart and tests all of them, so other tests' deliberate corruption must not reach it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from ecom_pipeline import DAG_ID
from ecom_pipeline.callbacks import BUILD_TASK_ID
from ecom_pipeline.manifest import manifest_path
from ecom_pipeline.publish import message_key

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ecom_app.local_airflow import DAGS_FOLDER
from ecom_app.local_airflow.airflow_home import airflow_env
from ecom_app.local_airflow.manifest import ensure_manifest
from tests.conftest import ECOM, private_stack, run_ecom
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

PIPELINE_ORDER = ["extract", "gate_raw", "transform_staging", "gate_staging",
                  "transform_marts", "gate_marts", "publish", "report"]
GROUP_TAGS = {"transform_staging": {"staging", "intermediate"}, "transform_marts": {"marts"}}
BUILD = BUILD_TASK_ID  # the task running a group's one `dbt build`
DAY = date(2024, 3, 5)
CORRUPT_DAY = date(2024, 3, 9)
CORRUPT = "corrupted-by-test"  # the Kafka topic of the rows a broken loader wrote
RETRY_DAY = date(2024, 3, 7)
EXTRA_DAYS = (date(2024, 3, 11), date(2024, 3, 12))
STARTED_AT = datetime.now(UTC)


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
        # a group's dbt build is not retried; its model and test tasks are, node by node
        assert task["retries"] == (0 if task["task_id"].endswith(BUILD) else 2), task["task_id"]
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
        expected = {f"{group}.{BUILD}", f"{group}.{BUILD}_done"}
        expected |= {f"{group}.{models[uid]['name']}.run" for uid in in_group}
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


def test_each_group_builds_its_models_once_then_shows_each_node(
        dag_shape: dict[str, Any], dbt_manifest: dict[str, Any]) -> None:
    """Watcher mode: one `dbt build` per group, before every task showing a model or its
    tests; together the two builds run every test once (a staging test reading a mart in
    the marts build, after the marts are rebuilt)."""
    tasks = {t["task_id"]: t for t in dag_shape["tasks"]}
    upstream = _upstream(dag_shape)
    nodes = dbt_manifest["nodes"]
    models = {uid for uid, n in nodes.items() if n["resource_type"] == "model"}
    tests = {uid: set(n["depends_on"]["nodes"]) for uid, n in nodes.items()
             if n["resource_type"] == "test"}
    ran: dict[str, set[str]] = {}
    for group, tags in GROUP_TAGS.items():
        build = tasks[f"{group}.{BUILD}"]
        assert build["operator"] == "DbtProducerWatcherOperator"
        # the build records every node's outcome in one XCom, which its tasks read
        shown = [t for t in tasks if t.startswith(f"{group}.") and not t.endswith("_done")]
        assert {tasks[t]["operator_module"] for t in shown} == {"ecom_pipeline.node_tasks"}
        assert build["retries"] == 0  # a retry would build everything again
        assert set(build["dbt_select"].split()) == {f"tag:{tag}" for tag in tags}
        in_group = {uid for uid in models if set(nodes[uid]["tags"]) & tags}
        members = [t for t in tasks if t.startswith(f"{group}.") and t != build["task_id"]]
        for task_id in members:  # nothing of the group shows a state before the build ends
            assert build["task_id"] in _ancestors(task_id, upstream), task_id
        for task_id in members:
            if not set(upstream[task_id]) & set(members):
                assert tasks[task_id]["trigger_rule"] == "all_done_min_one_success", task_id
                assert upstream[task_id] - {build["task_id"]}, task_id  # and the gate before
        per_model = build["dbt_tests_per_model"]
        for task_id in members:  # each test task waits for tests the build really runs
            if task_id.endswith("test"):
                assert per_model.get(tasks[task_id]["dbt_node"]), task_id
        ran[group] = {t for listed in per_model.values() for t in listed}
        cautious = build["dbt_indirect_selection"] == "cautious"
        assert ran[group] == {uid for uid, parents in tests.items()
                              if parents & in_group and (not cautious or parents <= in_group)}
    assert tasks["transform_staging." + BUILD]["dbt_indirect_selection"] == "cautious"
    assert not ran["transform_staging"] & ran["transform_marts"]
    assert ran["transform_staging"] | ran["transform_marts"] == {
        uid for uid, parents in tests.items() if parents & models}


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
    try:
        proc = run_ecom(pipeline_stack, "pipeline", "run", "--date", CORRUPT_DAY.isoformat(),
                        check=False, timeout=900)
    finally:  # later runs in this stack must not meet them
        _admin(pipeline_stack, f"delete from raw.raw_events where kafka_topic = '{CORRUPT}'")
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


@pytest.mark.slow
@pytest.mark.spark
def test_a_model_failing_in_the_build_is_retried_alone_and_the_run_goes_on(
        pipeline_stack: Settings, pipeline_run: Any, tmp_path: Path) -> None:
    """The staging build fails on one model (its table briefly not the transformer's);
    that model's task retries it alone (Cosmos runs dbt for that node), then its tests', and
    the run carries on to the marts, the gates and the report. Nothing failed for good: the
    webhook gets no message (the build's failure is in its log row)."""
    receiver = Receiver()
    settings = pipeline_stack.replace(alert_webhook_url=receiver.url)
    model, table = "int_purchase_lines", "analytics_intermediate.int_purchase_lines"
    run_ecom(settings, "simulate", "backfill", "--days", "1", "--end-date",
             RETRY_DAY.isoformat(), "--events-per-day", "1500", "--seed", "20240307",
             "--no-progress")
    _admin(settings, f"alter table {table} owner to {settings.user('admin')}")
    log = tmp_path / "retried-run.log"
    proc = subprocess.Popen([*ECOM, "pipeline", "run", "--date", RETRY_DAY.isoformat()],
                            cwd=REPO_ROOT, env=settings.subprocess_env(),
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        failed_at = _poll(lambda: _query(
            settings, "loader", """select status from ops.pipeline_execution_logs
                                   where logical_date = %s and task_id = %s
                                     and status <> 'running'""",
            RETRY_DAY, f"transform_staging.{model}.run"), proc, log)
    finally:
        _admin(settings, f"alter table {table} owner to {settings.user('transformer')}")
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    assert failed_at == [("up_for_retry",)]
    rows = _query(settings, "loader",
                  """select task_id, try_number, status from ops.pipeline_execution_logs
                      where logical_date = %s order by log_id""", RETRY_DAY)
    tries: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for task_id, try_number, status in rows:
        tries[task_id].append((try_number, status))
    assert tries[f"transform_staging.{BUILD}"] == [(1, "failed")]  # never built twice
    assert tries[f"transform_staging.{model}.run"] == [(1, "up_for_retry"), (2, "success")]
    assert tries[f"transform_staging.{model}.test"] == [(1, "up_for_retry"), (2, "success")]
    for task_id in ("gate_staging", f"transform_marts.{BUILD}", "gate_marts", "report"):
        assert tries[task_id] == [(1, "success")], task_id
    assert _query(settings, "transformer",
                  f"select count(*) from {table} where order_date = %s", RETRY_DAY)[0][0] > 0
    receiver.close()
    assert receiver.messages == [], "a build whose failed model recovered alerted someone"
    [(error,)] = _query(settings, "loader",
                        """select error_text from ops.pipeline_execution_logs
                            where logical_date = %s and task_id = %s""",
                        RETRY_DAY, f"transform_staging.{BUILD}")
    assert model in error


def _admin(settings: Settings, sql: str) -> None:
    with connect(settings, "admin") as conn, conn.cursor() as cur:
        cur.execute(sql)
        conn.commit()


def _poll(condition: Any, proc: subprocess.Popen, log: Path, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} early:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out:\n{log.read_text()[-4000:]}")


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
                   values (%s, %s, %s, 'teleport', %s, %s, %s, 0, %s)""",
                (event_id, f"u{i}", f"s{i}", ts, json.dumps(payload), CORRUPT, i),
            )
        conn.commit()


@pytest.mark.slow
@pytest.mark.spark
def test_airflow_up_serves_the_runs_with_real_times_and_one_dag_version(
        pipeline_stack: Settings, pipeline_run: Any) -> None:
    """What a user sees after `ecom pipeline run`s: `ecom airflow up`, then the runs through
    the REST API the UI reads: each run's real start and duration (not its logical date,
    not days), and one DAG version for all runs of the unchanged DAG (each run parses it in
    a new process, and so does the UI's DAG processor)."""
    import urllib.request

    from ecom.ports import free_port, pid_alive

    # two more runs of the same DAG in one process, days without events (their raw gate
    # fails: a failed run shows its times too)
    run_ecom(pipeline_stack, "pipeline", "run", "--date", EXTRA_DAYS[0].isoformat(),
             "--to", EXTRA_DAYS[-1].isoformat(), check=False, timeout=900)
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

        def get(path: str) -> dict[str, Any]:
            request = urllib.request.Request(f"{url}/api/v2/dags/{DAG_ID}{path}",
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        dag = get("")
        assert dag["dag_id"] == DAG_ID and dag["is_paused"] is True
        runs = get("/dagRuns?limit=100")["dag_runs"]
        assert {r["dag_run_id"] for r in runs} >= {pipeline_run.run_id}
        assert {r["logical_date"][:10] for r in runs} >= {
            d.isoformat() for d in (DAY, *EXTRA_DAYS)}
        for run in runs:
            started, ended = (datetime.fromisoformat(run[k]) for k in ("start_date", "end_date"))
            assert started > STARTED_AT and started.date() != DAY, run  # not the logical date
            assert 0 < run["duration"] < 1800 and ended > started, run
            assert [v["version_number"] for v in run["dag_versions"]] == [1], run
        assert get("/dagVersions")["total_entries"] == 1
        again = run_ecom(settings, "airflow", "up", timeout=120)  # idempotent
        assert url in again.stdout
    finally:
        pid_file = settings.data_dir / "airflow" / "standalone.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        down_run = run_ecom(settings, "airflow", "down", timeout=120)
    assert "stopped Airflow" in down_run.stdout
    assert pid is not None and not pid_alive(pid)
    assert "not running" in run_ecom(settings, "airflow", "down").stdout
