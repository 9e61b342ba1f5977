"""Cosmos wiring: the dbt project rendered as Airflow task groups from its manifest.

- Rendering: `LoadMode.DBT_MANIFEST` from `dbt_project/target/manifest.json` (written by
  `dbt parse`): no dbt invocation while the DAG file is parsed.
- Execution: `ExecutionMode.WATCHER`. Each group runs ONE `dbt build` of its selection (the
  producer task `dbt_producer_watcher`, with dbt's threads) and shows every model as a
  `<model>.run` task and its tests as a `<model>.test` task that take the state dbt
  reported for them. One task per model running its own dbt command (`ExecutionMode.LOCAL`)
  paid dbt's start-up 38 times a run: ~70 s of a 107 s day (README, "What a DAG run costs").
- The build runs dbt as a subprocess (`InvocationMode.SUBPROCESS`), not in-process through
  dbtRunner: in-process, Cosmos handles every dbt event (a JSON conversion, XCom writes
  through Airflow's API) inside dbt's worker threads, which then wait; as a subprocess dbt
  works on one core while Airflow reads its log on the other (the two builds took 39 s
  instead of 51 s, mean of 5 alternating runs on a busy 2-core machine).
- The build records every node's outcome in one XCom, which each model and test task
  reads (`ecom_pipeline.node_tasks`): one API call per group instead of ~3 per node in
  the build and ~7 per task.
- The model and test tasks run after the producer (`run_after_producer`): Cosmos starts them
  beside it to turn them green as dbt goes, which `airflow dags test` (one task at a time)
  cannot do, and which would hold worker slots on a small machine. A model or test task
  that fails is retried by itself: its retry runs dbt for that node alone (Cosmos' fallback,
  as `ExecutionMode.LOCAL` would). The producer is never retried (a second build of
  everything); the group's outcome is its model and test tasks', so the pipeline goes on
  when they recover.
- Tests: each model's own tests in its `.test` task (`TestBehavior.AFTER_EACH`; with the
  watcher, Cosmos aggregates the results of that model's tests in the build). A test with
  several parents (a relationship between marts, a reconciliation of staging against marts)
  runs in the marts group, in its own task after all its parents there. The staging group's
  build selects tests cautiously (`--indirect-selection cautious`: only tests whose parents
  are all in staging), so a staging-vs-mart reconciliation never runs before the marts are
  rebuilt; the marts group's build takes every test touching a mart.
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
from airflow.task.trigger_rule import TriggerRule
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
)
from cosmos.constants import (
    PRODUCER_WATCHER_DONE_TASK_ID,
    PRODUCER_WATCHER_TASK_ID,
    DbtResourceType,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    TestBehavior,
    TestIndirectSelection,
)

from ecom.config import Settings, load_settings
from ecom_pipeline.dbt_results import push_rows_affected
from ecom_pipeline.manifest import DBT_BIN, manifest_path
from ecom_pipeline.node_tasks import share_build_record

STAGING_SELECT = ("tag:staging", "tag:intermediate")
MARTS_SELECT = ("tag:marts",)

#: dbt nodes a build runs (and Cosmos renders) other than tests
BUILT_TYPES = {DbtResourceType.MODEL, DbtResourceType.SEED, DbtResourceType.SNAPSHOT}


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
              load_method: LoadMode = LoadMode.DBT_MANIFEST,
              execution_mode: ExecutionMode = ExecutionMode.WATCHER,
              invocation_mode: InvocationMode = InvocationMode.SUBPROCESS,
              test_behavior: TestBehavior = TestBehavior.AFTER_EACH) -> DbtTaskGroup:
    """One Cosmos task group over the models matching `select` (created inside the DAG's
    context, so its tasks inherit the DAG's default_args: retries, timeouts, callbacks).
    `multi_parent_tests=False`: the build runs only tests whose parents are all selected,
    and no task is rendered for the others (a later group runs them). `load_method` is only
    changed by bench/dag_parse.py (vs `dbt ls`), the execution and invocation modes and the
    test behaviour by bench/dag_choices.py (the alternatives measured). Wire it into the
    DAG, then call `run_after_producer(group)`."""
    project_dir = settings.dbt_project_dir
    manifest = manifest_path(project_dir)
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest} is missing: run `make dbt-parse` (or `ecom pipeline run`, which "
            "builds it) so Cosmos can render the dbt models as tasks."
        )
    watcher = execution_mode == ExecutionMode.WATCHER
    producer_args: dict[str, Any] = {"retries": 0}
    if not multi_parent_tests:
        producer_args["indirect_selection"] = TestIndirectSelection.CAUTIOUS.value
    operator_args: dict[str, Any] = {
        "install_deps": False,
        "interceptors": [inject_settings_env],
        "callback": push_rows_affected,
    }
    if watcher:
        # they run after the build, so their first look decides; no triggerer needed
        operator_args.update(deferrable=False, poke_interval=5)
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=project_dir,
            manifest_path=manifest,
            project_name=project_name(project_dir),
            install_dbt_deps=False,
        ),
        profile_config=profile_config(project_dir),
        execution_config=ExecutionConfig(
            execution_mode=execution_mode,
            dbt_executable_path=str(DBT_BIN),
            invocation_mode=invocation_mode,
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
            setup_operator_args=producer_args if watcher else None,
        ),
        render_config=RenderConfig(
            load_method=load_method,
            dbt_executable_path=str(DBT_BIN),
            invocation_mode=InvocationMode.SUBPROCESS,
            select=list(select),
            test_behavior=test_behavior,
            should_detach_multiple_parents_tests=multi_parent_tests,
            emit_datasets=False,
        ),
        operator_args=operator_args,
    )
    if watcher:
        producer = group.tasks_map[PRODUCER_WATCHER_TASK_ID]
        producer.tests_per_model = tests_the_build_runs(
            group.dbt_graph.nodes, group.dbt_graph.filtered_nodes, group.tasks_map,
            cautious=not multi_parent_tests)
        share_build_record(group_tasks(group))
    sort_excludes(group)
    return group


def group_tasks(group: DbtTaskGroup) -> list[Any]:
    """The tasks Cosmos rendered for the group (its build, done marker, model and test tasks)."""
    return [t for t in group.dag.tasks if t.task_id.startswith(f"{group.group_id}.")]


def sort_excludes(group: DbtTaskGroup) -> None:
    """Each task's `--exclude` list in a stable order. Cosmos joins it from a set, whose
    order follows Python's per-process hash seed: every parse serialised a slightly
    different DAG, and Airflow recorded a new DAG version for each (v1 to v4 after three
    unchanged runs)."""
    for task in group_tasks(group):
        exclude = getattr(task, "exclude", None)
        if isinstance(exclude, str):
            task.exclude = " ".join(sorted(exclude.split()))


def tests_the_build_runs(nodes: Mapping[str, Any], selected: Mapping[str, Any],
                         tasks_map: Mapping[str, Any], *, cautious: bool
                         ) -> dict[str, list[str]]:
    """The producer's map `model -> its tests` (a model's `.test` task passes when all of
    them reported), limited to the tests its `dbt build` runs, plus one entry per test
    rendered as a task of its own (keyed by the test itself, which is what that task
    waits for).

    Cosmos lists every test touching a selected model, but a cautious build skips those
    with a parent outside the selection: the model's `.test` task would wait for results
    that never come."""
    built = {uid for uid, node in selected.items() if node.resource_type in BUILT_TYPES}
    out: dict[str, list[str]] = {}
    for uid, node in nodes.items():
        if node.resource_type != DbtResourceType.TEST:
            continue
        parents = set(node.depends_on)
        if not parents & built or (cautious and not parents <= built):
            continue
        for parent in sorted(parents & built):
            out.setdefault(parent, []).append(uid)
        if uid in tasks_map:  # a multi-parent test with a task of its own
            out[uid] = [uid]
    return out


def run_after_producer(group: DbtTaskGroup) -> None:
    """Start the group's model and test tasks once its `dbt build` is over (see the module
    docstring), whatever its outcome: each reads its node's result, or runs dbt for that node
    itself if the build never got to it. Call it once the group is wired into the DAG: the
    first tasks keep the group's upstream (the gate before it), so a failed gate still stops
    them, and so does the producer's `done` marker, which the next gate waits for. A group
    rendered in another execution mode (bench/dag_choices.py) has no producer: no-op."""
    if PRODUCER_WATCHER_TASK_ID not in group.tasks_map:
        return
    producer = group.tasks_map[PRODUCER_WATCHER_TASK_ID]
    done = group.tasks_map[PRODUCER_WATCHER_DONE_TASK_ID]
    members = {t.task_id: t for t in group_tasks(group)}
    before = {u for u in producer.upstream_task_ids if u not in members}
    if not before:
        raise ValueError(f"wire {group.group_id} after its upstream task before calling this")
    for task in members.values():
        if task is producer or task is done:
            continue
        if not set(task.upstream_task_ids) & set(members):
            producer >> task
            task.trigger_rule = TriggerRule.ALL_DONE_MIN_ONE_SUCCESS
    for upstream in before:
        group.dag.get_task(upstream) >> done
    done.trigger_rule = TriggerRule.ALL_DONE_MIN_ONE_SUCCESS
