"""A watcher group's tasks share ONE record of its `dbt build` instead of an XCom per
node event: the build's callback records every node's outcome from dbt's run_results.json
(`dbt_results.node_results`), and each model and test task reads its node there.

Cosmos' watcher mode as shipped is made for tasks that watch the build while it runs: the
build pushes three or four XComs for each node dbt finishes (its status, compiled SQL, dbt
event, start-up lines), each a call to Airflow's API, and each model or test task makes
~7 more (the build's state, the node's status, SQL and event, its rendered fields a
second time to show the SQL). At ~6 ms a call, that was most of what ~70 such tasks and
two builds cost a run over the same work done directly (`bench/dag_run.py`). Ours run
after the build (`dbt_groups.run_after_producer`), when its record is complete:

- the build (`DbtProducerWatcherOperator`) still runs dbt with JSON logs and logs dbt's
  lines as they come, but pushes no XCom per node;
- a model or test task reads the record (one XCom per group, read once per process),
  shows its node's compiled SQL with its first rendered fields, logs dbt's line for it,
  and takes its state: success when dbt's status says so (for a `.test` task, when all of
  that model's tests passed: Cosmos' own rule), failed otherwise, including a node dbt
  skipped after an upstream failure (as Cosmos does: so that its retry runs it);
- a node missing from the record (the build stopped before it) runs dbt for itself, as
  Cosmos' fallback does;
- Cosmos' own path, unchanged, for the rest: a retry (it runs dbt for that node alone),
  or no record at all (a build stopped before its callback): with no status to read,
  Cosmos runs dbt for the node itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from airflow.sdk.exceptions import AirflowException
from cosmos.operators import watcher as cosmos_watcher
from cosmos.operators._watcher.base import _log_dbt_msg, _surface_non_json_stdout

from ecom_pipeline.dbt_results import SUCCESS_STATUSES, build_results, node_key

log = logging.getLogger(__name__)


def log_dbt_line(line: str, _extra: Any = None) -> None:
    """The build's handler of each line dbt prints: log it (dbt's message, or the line
    itself when it is not JSON), and nothing else."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        _surface_non_json_stdout(line)
        return
    if isinstance(event, dict):
        _log_dbt_msg(event)


class DbtProducerWatcherOperator(cosmos_watcher.DbtProducerWatcherOperator):
    """Cosmos' `dbt build` of a watcher group, without an XCom per node event."""

    def _make_parse_callable(self) -> Any:
        return log_dbt_line


class _ReadsBuildResults:
    """Mixin before a Cosmos watcher model/test class (see the module docstring)."""

    model_unique_id: str
    compiled_sql: str
    _resource_label: str
    _fallback_to_non_watcher_run: Any

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        node = (build_results(context) or {}).get(self.model_unique_id) or {}
        if node.get("compiled_sql"):  # shown with the first rendered fields: no rewrite
            self.compiled_sql = node["compiled_sql"]

    def poke(self, context: Any) -> bool:
        results = build_results(context)
        try_number = int(context["ti"].try_number or 1)
        if results is None or try_number > 1:
            return bool(super().poke(context))  # type: ignore[misc]
        entry = results.get(node_key(self)) or {}
        status = entry.get("status")
        if status is None:  # the build stopped before it: run it alone, as Cosmos would
            log.info("dbt build: no result for %s; running dbt for it alone",
                     self.model_unique_id)
            return bool(self._fallback_to_non_watcher_run(try_number, context))
        if "tests" in entry:
            log.info("dbt build: %s of the %d tests of %s reported, together: %s (failing "
                     "rows: %s)", entry.get("reported"), entry["tests"], self.model_unique_id,
                     status, entry.get("rows") or 0)
        else:
            seconds = entry.get("seconds")
            log.info("dbt build: %s %s, %s%s", self.model_unique_id, status,
                     entry.get("message") or "no message",
                     f", in {seconds:.2f} s" if isinstance(seconds, int | float) else "")
        if status in SUCCESS_STATUSES:
            return True
        raise AirflowException(
            f"{self._resource_label} '{self.model_unique_id}' finished with status "
            f"'{status}' in the group's dbt build (a retry runs it alone)")


class DbtRunWatcherOperator(_ReadsBuildResults, cosmos_watcher.DbtRunWatcherOperator):
    """Cosmos' model task in watcher mode, reading the build's record."""


class DbtTestWatcherOperator(_ReadsBuildResults, cosmos_watcher.DbtTestWatcherOperator):
    """Cosmos' tests task in watcher mode, reading the build's record."""


#: Cosmos' watcher classes -> ours (the same names, which the UI shows as the task's type)
SHARED_RECORD_CLASSES: dict[type, type] = {
    cosmos_watcher.DbtProducerWatcherOperator: DbtProducerWatcherOperator,
    cosmos_watcher.DbtRunWatcherOperator: DbtRunWatcherOperator,
    cosmos_watcher.DbtTestWatcherOperator: DbtTestWatcherOperator,
}


def share_build_record(tasks: Iterable[Any]) -> None:
    """Turn Cosmos' watcher build, model and test tasks among `tasks` into ours (their
    class only: every argument Cosmos gave them stays)."""
    for task in tasks:
        if (ours := SHARED_RECORD_CLASSES.get(type(task))) is not None:
            task.__class__ = ours
