"""What a dbt command did, read from its run_results.json (Cosmos callback): the rows it
touched, and the nodes that failed (a failing test with its count of failing rows), which
the failure callback puts in the webhook message.

In watcher mode one `dbt build` (the producer task) runs every node of a group; its
callback also records the rows of each node, so each model's and each test's task writes
its own figure to the execution log (`rows_reported_by_build`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecom_pipeline.execution_log import ROWS_XCOM_KEY
from ecom_pipeline.notifications import FAILURES_XCOM_KEY

FAILED_STATUSES = ("fail", "error", "runtime error")

#: XCom of the producer: rows per model unique_id, failing rows per `<unique_id>:tests`
NODE_ROWS_XCOM_KEY = "dbt_node_rows"


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


def rows_per_node(results: Mapping[str, Any], tests_per_model: Mapping[str, list[str]]
                  ) -> dict[str, int]:
    """Per model: its rows; per `<key>:tests` of the producer's model -> tests map: the
    failing rows of those tests (what a model's `.test` task, or a test's own task, shows)."""
    out: dict[str, int] = {}
    by_test: dict[str, int] = {}
    for result in results.get("results", []):
        uid, rows = result.get("unique_id", ""), _node_rows(result)
        if rows is None:
            continue
        if uid.startswith("test."):
            by_test[uid] = rows
        else:
            out[uid] = rows
    for key, tests in tests_per_model.items():
        found = [by_test[t] for t in tests if t in by_test]
        if found:
            out[f"{key}:tests"] = sum(found)
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
    and for the watcher's build, the rows of each node (see `rows_reported_by_build`)."""
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
        ti.xcom_push(key=NODE_ROWS_XCOM_KEY, value=rows_per_node(results, tests_per_model))


def is_watcher_node_task(context: Mapping[str, Any]) -> bool:
    """A watcher model/test task (it shows a node of its group's build)."""
    task = getattr(context["ti"], "task", None)
    return bool(getattr(task, "producer_task_id", None) and
                getattr(task, "model_unique_id", None))


#: (run id, build task) -> the build's rows per node; in Airflow's test mode every task of
#: a run shares this process, and the ~20 node tasks of a group read the same XCom
_build_rows: dict[tuple[str, str], dict[str, Any]] = {}


def rows_reported_by_build(context: Mapping[str, Any]) -> int | None:
    """For a watcher model/test task: its node's rows, as the group's build recorded them
    (None for any other task, or when the build did not report that node)."""
    if not is_watcher_node_task(context):
        return None
    ti = context["ti"]
    task = ti.task
    key = (ti.run_id, task.producer_task_id)
    if key not in _build_rows:
        _build_rows[key] = ti.xcom_pull(task_ids=key[1], key=NODE_ROWS_XCOM_KEY) or {}
    rows = _build_rows[key]
    node = task.model_unique_id
    value = rows.get(f"{node}:tests" if getattr(task, "is_test_sensor", False) else node)
    return value if isinstance(value, int) else None
