"""The maintenance DAG `ecommerce_maintenance`: parsed by Airflow in a fresh process (the
steps in the CLI's order, callbacks and timeouts on every task, its own 04:00 schedule),
and one run with `airflow dags test` on a stack of its own with WAL archiving on: every
task succeeds, the backup is taken, the old dead letters are archived, every action is a
row of ops.maintenance_actions under the run's id and every attempt a row of the
execution log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from itertools import pairwise
from typing import Any

import pytest
from ecom_pipeline.maintenance import MAINTENANCE_DAG_ID, STEPS

from ecom.config import REPO_ROOT, Settings
from ecom.stack import backup
from ecom_app.local_airflow.airflow_home import airflow_env
from ecom_app.local_airflow.manifest import ensure_manifest
from ecom_app.seed import query
from tests.conftest import private_stack

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 1)
OLD_DAY = date(2026, 1, 10)  # older than the archive's 30 days before DAY

SHAPE = f"""
import json
from airflow.dag_processing.dagbag import DagBag
from ecom_app.local_airflow import DAGS_FOLDER
bag = DagBag(dag_folder=str(DAGS_FOLDER))
dag = bag.dags["{MAINTENANCE_DAG_ID}"]
print(json.dumps({{
    "import_errors": {{str(k): str(v) for k, v in bag.import_errors.items()}},
    "schedule": getattr(dag.timetable, "summary", str(dag.timetable)),
    "max_active_runs": dag.max_active_runs,
    "catchup": dag.catchup,
    "tasks": [{{"task_id": t.task_id, "upstream": sorted(t.upstream_task_ids),
               "retries": t.retries, "timeout": t.execution_timeout.total_seconds(),
               "callbacks": all(getattr(t, k) for k in (
                   "on_execute_callback", "on_success_callback", "on_failure_callback",
                   "on_retry_callback"))}} for t in dag.tasks],
}}))
"""


@pytest.fixture(scope="module")
def shape(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings.from_env({"PATH": "/usr/bin:/bin"})
    ensure_manifest(settings)
    env = airflow_env(settings)
    env["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow-parse"))
    proc = subprocess.run([sys.executable, "-c", SHAPE], env=env, cwd=REPO_ROOT, text=True,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])


def test_the_dag_chains_the_steps_with_callbacks_on_every_task(shape: dict[str, Any]) -> None:
    assert shape["import_errors"] == {}
    assert "0 4 * * *" in shape["schedule"]
    assert shape["max_active_runs"] == 1 and shape["catchup"] is False
    tasks = {t["task_id"]: t for t in shape["tasks"]}
    assert list(tasks) == list(STEPS)
    for before, after in pairwise(STEPS):
        assert tasks[after]["upstream"] == [before]
    assert all(t["callbacks"] and t["retries"] >= 1 and t["timeout"] for t in tasks.values())


@pytest.fixture(scope="module")
def maintenance_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with private_stack(tmp_path_factory, "ops-dag", backup_enabled=True) as s:
        query(s, "insert into raw.rejected_events (kafka_topic, kafka_partition, kafka_offset, "
                 "raw_value, raw_size_bytes, reason_code, reason_message, received_at) "
                 "select 'gone.ecommerce-events', 0, i, 'x', 1, 'invalid_json', 'not JSON', "
                 "%s::date + i * interval '1 minute' from generate_series(1, 50) as g (i) "
                 "returning 1", (OLD_DAY,))
        yield s


@pytest.mark.slow
def test_a_maintenance_run_backs_up_archives_and_logs_every_action(
        maintenance_stack: Settings) -> None:
    from ecom_app.local_airflow.runner import run_day

    s = maintenance_stack
    run = run_day(s, DAY, dag_id=MAINTENANCE_DAG_ID)
    assert run.state == "success", [(t.task_id, t.state, t.error_text) for t in run.tasks]
    assert [t.task_id for t in run.tasks] == list(STEPS)
    assert all(t.state == "success" for t in run.tasks)

    assert [b.kind for b in backup.repository(s).backups] == ["full"]
    assert query(s, "select count(*) from raw.rejected_events") == [(0,)]
    assert query(s, "select day, rows, state from ops.archive_parts") == [
        (OLD_DAY, 50, "archived")]
    actions = {(a, st) for a, st in query(
        s, "select action, status from ops.maintenance_actions where run_id = %s "
           "and logical_date = %s", (run.run_id, DAY))}
    assert {("kafka_retention", "checked"), ("backup", "done"), ("expire_backups", "done"),
            ("archive", "done"), ("prune", "done")} <= actions
    logged = query(s, "select task_id, status from ops.pipeline_execution_logs "
                      "where dag_id = %s and run_id = %s order by log_id",
                   (MAINTENANCE_DAG_ID, run.run_id))
    assert logged == [(step, "success") for step in STEPS]
