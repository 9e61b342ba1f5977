"""What a dbt command did, read from its run_results.json (Cosmos callback): the rows it
touched, and the nodes that failed (a failing test with its count of failing rows), which
the failure callback puts in the webhook message."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecom_pipeline.callbacks import ROWS_XCOM_KEY
from ecom_pipeline.notifications import FAILURES_XCOM_KEY

FAILED_STATUSES = ("fail", "error", "runtime error")


def rows_from_run_results(results: Mapping[str, Any]) -> int | None:
    """Rows a dbt command touched, from run_results.json: the adapter's row counts for
    models (a view reports none), the failing rows for tests."""
    total, seen = 0, False
    for result in results.get("results", []):
        if result.get("unique_id", "").startswith("test."):
            failures = result.get("failures")
            if isinstance(failures, int):
                total, seen = total + failures, True
            continue
        rows = (result.get("adapter_response") or {}).get("rows_affected")
        if isinstance(rows, int) and rows >= 0:
            total, seen = total + rows, True
    return total if seen else None


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
    command's error): XCom `rows_affected` for the log row, `dbt_failures` if any failed."""
    path = Path(project_dir) / "target" / "run_results.json"
    if context is None or not path.is_file():
        return
    results = json.loads(path.read_text())
    rows = rows_from_run_results(results)
    if rows is not None:
        context["ti"].xcom_push(key=ROWS_XCOM_KEY, value=rows)
    if failed := failed_nodes(results):
        context["ti"].xcom_push(key=FAILURES_XCOM_KEY, value=failed)
