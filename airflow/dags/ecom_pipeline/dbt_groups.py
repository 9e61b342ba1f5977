"""Cosmos wiring: the dbt project rendered as Airflow task groups from its manifest.

- Rendering: `LoadMode.DBT_MANIFEST` from `dbt_project/target/manifest.json` (written by
  `dbt parse`): no dbt invocation while the DAG file is parsed.
- Execution: the project's own `profiles.yml` (it reads `ECOM_*` variables), dbt run
  in-process through dbtRunner (`InvocationMode.DBT_RUNNER`, set explicitly: dbt is
  importable in this venv). A subprocess per task cost ~3-5 s of Python/dbt start-up on
  each of the ~40 dbt tasks; `bench/dag_parse.py` still renders with the dbt executable.
- Tests run after each model (`TestBehavior.AFTER_EACH`), each model's own tests only
  (`indirect_selection=cautious`). A test with several parents (a relationship between
  marts, a reconciliation of staging against marts) runs in the marts group, in its own
  task after all its parents there. The staging group does not render such tests: Cosmos
  would put a staging-vs-mart reconciliation there, before the marts are rebuilt (it adds
  every test of a selected model, whatever `exclude` says).
- The `ECOM_*` settings are put into dbt's environment when the task runs (never into the
  serialised DAG).
- No day is passed to dbt: its incremental models find the event dates whose raw data
  changed (late events included) and rebuild exactly those, so any run, rerun or
  backfill converges to the same marts.
"""

from __future__ import annotations

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
from cosmos.constants import InvocationMode, LoadMode, TestBehavior, TestIndirectSelection

from ecom.config import Settings, load_settings
from ecom_pipeline.dbt_results import push_rows_affected
from ecom_pipeline.manifest import DBT_BIN, manifest_path

STAGING_SELECT = ("tag:staging", "tag:intermediate")
MARTS_SELECT = ("tag:marts",)


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
    """Cosmos interceptor: the `ECOM_*` settings into dbt's environment at run time (they
    may live only in `<data dir>/secrets.env`, not in the worker's environment). Never part
    of the serialised DAG; Airflow masks the password-like keys in the rendered fields."""
    operator.env = {**(operator.env or {}), **load_settings().as_env()}


def dbt_group(group_id: str, select: tuple[str, ...], settings: Settings, *,
              multi_parent_tests: bool = True,
              load_method: LoadMode = LoadMode.DBT_MANIFEST) -> DbtTaskGroup:
    """One Cosmos task group over the models matching `select` (created inside the DAG's
    context, so its tasks inherit the DAG's default_args: retries, timeouts, callbacks).
    `multi_parent_tests=False` renders no task for tests with several parents (they run in
    a later group). `load_method` is only changed by bench/dag_parse.py (vs `dbt ls`)."""
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
            invocation_mode=InvocationMode.DBT_RUNNER,
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
        ),
        render_config=RenderConfig(
            load_method=load_method,
            dbt_executable_path=str(DBT_BIN),
            invocation_mode=InvocationMode.SUBPROCESS,
            select=list(select),
            test_behavior=TestBehavior.AFTER_EACH,
            should_detach_multiple_parents_tests=multi_parent_tests,
            emit_datasets=False,
        ),
        operator_args={
            "install_deps": False,
            "interceptors": [inject_settings_env],
            "callback": push_rows_affected,
        },
    )
