"""The dbt manifest Cosmos renders the DAG from (`LoadMode.DBT_MANIFEST`).

`make dbt-parse` (or `dbt parse`) writes `dbt_project/target/manifest.json`; the local
tooling (`ecom pipeline run`, `ecom airflow up`) refreshes it when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

DBT_BIN = Path(sys.executable).with_name("dbt")


def manifest_path(project_dir: Path) -> Path:
    return project_dir / "target" / "manifest.json"
