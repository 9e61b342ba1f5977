"""Cosmos wiring: the dbt project rendered as Airflow task groups from its manifest.

- Rendering: `LoadMode.DBT_MANIFEST` from `dbt_project/target/manifest.json` (written by
  `dbt parse`): no dbt invocation while the DAG file is parsed.
- Execution: the project's own `profiles.yml` (it reads `ECOM_*` variables), dbt from this
  venv as a subprocess (`InvocationMode.SUBPROCESS`: with dbt importable, Cosmos would
  otherwise use dbtRunner in-process and ignore `dbt_executable_path`).
- Tests run after each model (`TestBehavior.AFTER_EACH`); a test with several parents (e.g.
  a reconciliation between two marts) runs once, after all of them.
- Every dbt command gets `--vars` with the run's logical day (`run_date`), and the
  `ECOM_*` settings are put into its environment when the task runs (never serialised).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
)
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

from ecom.config import Settings, load_settings
from ecom_pipeline.callbacks import ROWS_XCOM_KEY
from ecom_pipeline.manifest import DBT_BIN, manifest_path

log = logging.getLogger(__name__)

STAGING_SELECT = ("tag:staging", "tag:intermediate")
MARTS_SELECT = ("tag:marts",)
# dbt var carrying the logical day; the models use it to bound incremental work
RUN_DATE_VAR = "run_date"


def project_name(project_dir: Path) -> str:
    return yaml.safe_load((project_dir / "dbt_project.yml").read_text())["name"]


def profile_config(project_dir: Path) -> ProfileConfig:
    """The project's profiles.yml, its profile named in dbt_project.yml, target `dev`
    unless the profile defines a single other output."""
    profile = yaml.safe_load((project_dir / "dbt_project.yml").read_text())["profile"]
    profiles = yaml.safe_load((project_dir / "profiles.yml").read_text())
    outputs = list(profiles[profile].get("outputs", {}))
    target = "dev" if "dev" in outputs or not outputs else outputs[0]
    return ProfileConfig(profile_name=profile, target_name=target,
                         profiles_yml_filepath=project_dir / "profiles.yml")


def inject_settings_env(_context: Mapping[str, Any], operator: Any) -> None:
    """Cosmos interceptor: the worker's `ECOM_*` settings (secrets included) into dbt's env,
    at run time only, so they never reach the serialised DAG."""
    operator.env = {**(operator.env or {}), **load_settings().as_env()}


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


def dbt_group(group_id: str, select: tuple[str, ...], settings: Settings) -> DbtTaskGroup:
    """One Cosmos task group over the models matching `select` (created inside the DAG's
    context, so its tasks inherit the DAG's default_args: retries, timeouts, callbacks)."""
    project_dir = settings.dbt_project_dir
    manifest = manifest_path(project_dir)
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest} is missing: run `make dbt-parse` (or `ecom pipeline run`, which "
            "builds it) so Cosmos can render the dbt models as tasks."
        )
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=project_dir,
            manifest_path=manifest,
            project_name=project_name(project_dir),
            install_dbt_deps=False,
        ),
        profile_config=profile_config(project_dir),
        execution_config=ExecutionConfig(
            dbt_executable_path=str(DBT_BIN),
            invocation_mode=InvocationMode.SUBPROCESS,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=list(select),
            test_behavior=TestBehavior.AFTER_EACH,
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,
        ),
        operator_args={
            "vars": {RUN_DATE_VAR: "{{ ds }}"},
            "install_deps": False,
            "interceptors": [inject_settings_env],
            "callback": push_rows_affected,
        },
    )
