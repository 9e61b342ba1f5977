"""Rows a dbt command touched, read from its run_results.json (Cosmos callback)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecom_pipeline.callbacks import ROWS_XCOM_KEY


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


def push_rows_affected(project_dir: str, context: Mapping[str, Any] | None = None,
                       **_: Any) -> None:
    """Cosmos callback after each dbt command: XCom `rows_affected` for the log row."""
    path = Path(project_dir) / "target" / "run_results.json"
    if context is None or not path.is_file():
        return
    rows = rows_from_run_results(json.loads(path.read_text()))
    if rows is not None:
        context["ti"].xcom_push(key=ROWS_XCOM_KEY, value=rows)
