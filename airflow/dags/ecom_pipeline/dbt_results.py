"""What a dbt command did, read from its run_results.json (Cosmos callback): the rows it
touched, and the nodes that failed (a failing test with its count of failing rows), which
the failure callback puts in the webhook message.

In watcher mode one `dbt build` (the producer task) runs every node of a group; its
callback also records each node's outcome in ONE XCom (`NODE_RESULTS_XCOM_KEY`): status,
dbt's message, seconds, rows and compiled SQL per model, and per model the aggregated
status of its tests. Each model's and test's task reads its node there
(`build_results`), for its state (`ecom_pipeline.node_tasks`) and for the rows its
execution-log row records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecom_pipeline.execution_log import ROWS_XCOM_KEY
from ecom_pipeline.notifications import FAILURES_XCOM_KEY

FAILED_STATUSES = ("fail", "error", "runtime error")
#: a node dbt reported with one of these succeeded (Cosmos' `DBT_SUCCESS_STATUSES`)
SUCCESS_STATUSES = ("success", "pass", "warn")

#: XCom of the producer: per node unique_id its outcome; per `<unique_id>:tests` the
#: outcome of the tests the producer's model -> tests map lists for it
NODE_RESULTS_XCOM_KEY = "dbt_node_results"


def _node_rows(result: Mapping[str, Any]) -> int | None:
    """A model's rows (the adapter's count; a view reports none), a test's failing rows."""
    if result.get("unique_id", "").startswith("test."):
        failures = result.get("failures")
        return failures if isinstance(failures, int) else None
    rows = (result.get("adapter_response") or {}).get("rows_affected")
    return rows if isinstance(rows, int) and rows >= 0 else None


def rows_from_run_results(results: Mapping[str, Any]) -> int | None:
    """Rows a dbt command touched, from run_results.json: the adapter's row counts for
    models (a view reports none), the failing rows for tests."""
    counts = [n for r in results.get("results", []) if (n := _node_rows(r)) is not None]
    return sum(counts) if counts else None


def node_results(results: Mapping[str, Any], tests_per_model: Mapping[str, list[str]]
                 ) -> dict[str, dict[str, Any]]:
    """Per built node: dbt's status and message, seconds, rows and compiled SQL; per key
    of the producer's model -> tests map, `<key>:tests`: the tests' aggregated status
    (Cosmos' rule: `pass` when all of them reported a success, `fail` when one did not,
    None when one did not report), their count and failing rows."""
    out: dict[str, dict[str, Any]] = {}
    tests: dict[str, Mapping[str, Any]] = {}
    for result in results.get("results", []):
        uid = str(result.get("unique_id", ""))
        if uid.startswith("test."):
            tests[uid] = result
        if not uid.startswith("test.") or uid in tests_per_model:
            out[uid] = {"status": result.get("status"), "message": result.get("message"),
                        "seconds": result.get("execution_time"), "rows": _node_rows(result),
                        "compiled_sql": result.get("compiled_code")}
    for key, uids in tests_per_model.items():
        if not uids:
            continue
        reported = [tests[t] for t in uids if t in tests]
        status = None
        if len(reported) == len(uids):
            ok = all(r.get("status") in SUCCESS_STATUSES for r in reported)
            status = "pass" if ok else "fail"
        failing = [n for r in reported if (n := _node_rows(r)) is not None]
        out[f"{key}:tests"] = {"status": status, "tests": len(uids),
                               "reported": len(reported),
                               "rows": sum(failing) if failing else None}
    return out


def failed_nodes(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The nodes that failed or errored: name, kind, status, failing rows, dbt's message."""
    failed = []
    for result in results.get("results", []):
        if result.get("status") not in FAILED_STATUSES:
            continue
        kind, _, rest = str(result.get("unique_id", "")).partition(".")
        failed.append({
            "name": rest.split(".")[1] if "." in rest else rest,
            "kind": kind,
            "status": result.get("status"),
            "failures": result.get("failures"),
            "message": " ".join(str(result.get("message") or "").split())[:300],
        })
    return failed


def push_rows_affected(project_dir: str, context: Mapping[str, Any] | None = None,
                       **_: Any) -> None:
    """Cosmos callback after each dbt command (it runs before Cosmos raises a failed
    command's error): XCom `rows_affected` for the log row, `dbt_failures` if any failed,
    and for the watcher's build, each node's outcome (see `build_results`)."""
    path = Path(project_dir) / "target" / "run_results.json"
    if context is None or not path.is_file():
        return
    results = json.loads(path.read_text())
    ti = context["ti"]
    rows = rows_from_run_results(results)
    if rows is not None:
        ti.xcom_push(key=ROWS_XCOM_KEY, value=rows)
    if failed := failed_nodes(results):
        ti.xcom_push(key=FAILURES_XCOM_KEY, value=failed)
    tests_per_model = getattr(getattr(ti, "task", None), "tests_per_model", None)
    if isinstance(tests_per_model, Mapping):
        ti.xcom_push(key=NODE_RESULTS_XCOM_KEY, value=node_results(results, tests_per_model))


def is_watcher_node_task(context: Mapping[str, Any]) -> bool:
    """A watcher model/test task (it shows a node of its group's build)."""
    task = getattr(context["ti"], "task", None)
    return bool(getattr(task, "producer_task_id", None) and
                getattr(task, "model_unique_id", None))


#: build task -> (run id, its node results): in Airflow's test mode every task of a run
#: shares this process, and the ~35 node tasks of a group read the same XCom
_build_results: dict[str, tuple[str, dict[str, Any]]] = {}


def build_results(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """For a watcher model/test task: what its group's build recorded (`node_results`), or
    None: any other task, or a build that recorded nothing (still running, or stopped
    before its callback)."""
    if not is_watcher_node_task(context):
        return None
    ti = context["ti"]
    producer = ti.task.producer_task_id
    cached = _build_results.get(producer)
    if cached is None or cached[0] != ti.run_id:
        results = ti.xcom_pull(task_ids=producer, key=NODE_RESULTS_XCOM_KEY)
        if not isinstance(results, dict):
            return None  # not cached: the build may record them later
        cached = _build_results[producer] = (ti.run_id, results)
    return cached[1]


def node_key(task: Any) -> str:
    """A watcher task's entry in `node_results`: its model, or its model's tests."""
    node = str(task.model_unique_id)
    return f"{node}:tests" if getattr(task, "is_test_sensor", False) else node


def rows_reported_by_build(context: Mapping[str, Any]) -> int | None:
    """For a watcher model/test task: its node's rows, as the group's build recorded them
    (None for any other task, or when the build did not report that node)."""
    results = build_results(context)
    if results is None:
        return None
    value = (results.get(node_key(context["ti"].task)) or {}).get("rows")
    return value if isinstance(value, int) else None
