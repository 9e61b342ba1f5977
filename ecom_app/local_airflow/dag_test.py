"""One DAG run per logical day, oldest first, in ONE Airflow process (`ecom pipeline run`'s
worker): `python -m ecom_app.local_airflow.dag_test [--dag DAG_ID] 2026-03-01 2026-03-02
...` (the pipeline's DAG unless told), in the environment of `airflow_home.airflow_env`.

What `airflow dags test <dag> <day>` does (`DAG.test`: each task in this process, one
after another), for several days without paying Airflow's, dbt's, Great Expectations' and
Spark's start-up again for each (~10 s a day on 2 cores), plus two fixes for what the UI
then shows of these runs:

- start date: `DAG.test` records the logical date as the run's start, so the UI showed a
  run of 2026-03-01 as started on 2026-03-01 00:00 and lasting days. The run is created
  with the real start instead (Airflow's own helper, called with `start_date` = now).
- deadlines: the DAG keeps its `DeadlineAlert` (a DAG parsed without it would be another
  DAG version than the scheduler's). `DAG.test` runs an in-memory copy of the DAG whose
  alerts are their definitions, not the ids the metadata DB gives them, and at the end of a
  successful run Airflow looks them up by id to drop the run's deadlines and fails
  (apache/airflow#73428): those look-ups get the definition's reference instead.
- Airflow's Execution API: `DAG.test` serves it in this process and builds it on the first
  task's first call (the FastAPI app and its versioned routes, ~3.5 s on 2 cores), so the
  first task of the first run (`extract`) took 3.9 s for 0.3 s of work. It is started before
  the first run instead, as an Airflow deployment's API server is before a run is queued:
  the command still pays it, the run no longer does.
- results: after each run, one `RUN_MARK` line on stdout with the run id, its state and
  every task's state (what `airflow tasks states-for-dag-run` would print, without a
  second Airflow process).
Task progress comes from `DAG.test`'s own `[DAG TEST] starting/end task` log lines.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from typing import Any

from ecom_pipeline import DAG_ID

#: stdout prefix of the line this module prints before a run (`{"day": ...}`) and after it
START_MARK = "@@ecom-dag-run-start "
RUN_MARK = "@@ecom-dag-run "


@contextmanager
def real_start_dates() -> Iterator[None]:
    """Create `DAG.test`'s runs with their real start date (see the module docstring)."""
    import airflow.models.dagrun as dagrun_module
    from airflow.sdk import timezone

    original: Callable[..., Any] = dagrun_module.get_or_create_dagrun

    def create_now(**kwargs: Any) -> Any:
        kwargs["start_date"] = timezone.utcnow()
        return original(**kwargs)

    dagrun_module.get_or_create_dagrun = create_now
    try:
        yield
    finally:
        dagrun_module.get_or_create_dagrun = original


@contextmanager
def deadlines_by_definition() -> Iterator[None]:
    """Let a successful `DAG.test` run drop its deadlines (see the module docstring)."""
    from types import SimpleNamespace

    import airflow.models.dagrun as dagrun_module

    model = dagrun_module.DeadlineAlertModel
    original = model.get_by_id

    def get_by_id(alert_id: Any, **kwargs: Any) -> Any:
        if isinstance(alert_id, Mapping):  # an alert's definition, from the in-memory DAG
            data = alert_id.get("__var", alert_id)
            return SimpleNamespace(reference_class=model.reference_class.fget(
                SimpleNamespace(reference=data.get("reference") or {})))
        return original(alert_id, **kwargs)

    model.get_by_id = get_by_id
    try:
        yield
    finally:
        model.get_by_id = original


def start_execution_api() -> None:
    """Build and start the in-process Execution API `DAG.test`'s tasks talk to (see the
    module docstring): one health request through the client the tasks will use. A failure
    here is not the run's: the first task then starts the API itself."""
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

    try:
        InProcessTestSupervisor._api_client().get("health").raise_for_status()
    except Exception as exc:  # only a head start: the first task starts it otherwise
        print(f"Airflow's execution API did not start ahead of the run ({exc}); the first "
              "task starts it", file=sys.stderr, flush=True)


def run_days(days: list[date], dag_id: str = DAG_ID) -> int:
    """Run the DAG for each day in turn; the number of runs that did not succeed."""
    from airflow.utils.cli import get_bagged_dag
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    dag = get_bagged_dag(None, dag_id)
    start_execution_api()
    failed = 0
    for day in days:
        print(START_MARK + json.dumps({"day": day.isoformat()}), flush=True)
        with real_start_dates(), deadlines_by_definition():
            run = dag.test(logical_date=datetime.combine(day, time(0), tzinfo=UTC))
        with create_session() as session:
            tasks = [{"task_id": ti.task_id, "state": ti.state and str(ti.state),
                      "try_number": ti.try_number}
                     for ti in run.get_task_instances(session=session)]
        state = str(run.state)
        failed += state != DagRunState.SUCCESS
        print(RUN_MARK + json.dumps({"day": day.isoformat(), "run_id": run.run_id,
                                     "state": state, "tasks": tasks}), flush=True)
    return failed


def main(argv: list[str]) -> int:
    dag_id = DAG_ID
    if argv[:1] == ["--dag"] and len(argv) > 1:
        dag_id, argv = argv[1], argv[2:]
    if not argv:
        print("usage: python -m ecom_app.local_airflow.dag_test [--dag DAG_ID] YYYY-MM-DD "
              "[YYYY-MM-DD ...]", file=sys.stderr)
        return 2
    return 1 if run_days([date.fromisoformat(a) for a in argv], dag_id) else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Everything is written (metadata DB and warehouse committed, the marks printed): skip
    # the interpreter's teardown of Airflow, dbt's and GE's modules, ~3 s on 2 cores that
    # `ecom pipeline run` would otherwise wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
