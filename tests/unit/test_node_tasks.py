"""The watcher model and test tasks reading the build's one record (`ecom_pipeline.node_tasks`):
what state each takes from it, with the real operator classes and a task instance that
answers the one XCom read."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException
from ecom_pipeline.dbt_results import NODE_RESULTS_XCOM_KEY
from ecom_pipeline.node_tasks import (
    DbtRunWatcherOperator,
    DbtTestWatcherOperator,
    log_dbt_line,
)

PRODUCER = "transform_marts.dbt_producer_watcher"
RECORD = {
    "model.p.a": {"status": "success", "message": "INSERT 0 12", "seconds": 0.4, "rows": 12,
                  "compiled_sql": "select 1 as a"},
    "model.p.a:tests": {"status": "pass", "tests": 2, "reported": 2, "rows": 0},
    "model.p.b": {"status": "error", "message": "relation does not exist", "rows": None},
    "model.p.b:tests": {"status": "fail", "tests": 1, "reported": 1, "rows": None},
    "model.p.c": {"status": "skipped", "message": None},
}
_runs = itertools.count()


def _task(cls: type, uid: str) -> Any:
    return cls(task_id=f"{uid}.{cls.__name__}", project_dir="/tmp", producer_task_id=PRODUCER,
               extra_context={"dbt_node_config": {"unique_id": uid}}, deferrable=False)


def _context(task: Any, try_number: int = 1, record: Any = RECORD) -> dict[str, Any]:
    reads: list[tuple[str, str]] = []

    def xcom_pull(task_ids: str, key: str) -> Any:
        reads.append((task_ids, key))
        return record

    ti = SimpleNamespace(task=task, run_id=f"manual__{next(_runs)}", try_number=try_number,
                         xcom_pull=xcom_pull, reads=reads)
    return {"ti": ti}


def test_a_node_that_succeeded_in_the_build_succeeds_from_one_read() -> None:
    task = _task(DbtRunWatcherOperator, "model.p.a")
    context = _context(task)
    task.render_template_fields(context)
    assert task.compiled_sql == "select 1 as a"  # shown with the first rendered fields
    assert task.poke(context) is True
    tests = _task(DbtTestWatcherOperator, "model.p.a")
    tests_context = {"ti": SimpleNamespace(**{**vars(context["ti"]), "task": tests})}
    assert tests.poke(tests_context) is True
    # one XCom read for the model's task, its rendering and its tests' task: the group's
    assert context["ti"].reads == [(PRODUCER, NODE_RESULTS_XCOM_KEY)]


@pytest.mark.parametrize(("cls", "uid", "status"), [
    (DbtRunWatcherOperator, "model.p.b", "error"),
    (DbtTestWatcherOperator, "model.p.b", "fail"),
    (DbtRunWatcherOperator, "model.p.c", "skipped"),  # dbt skipped it: an upstream failed
])
def test_a_node_that_did_not_succeed_fails_its_first_try(cls: type, uid: str,
                                                         status: str) -> None:
    task = _task(cls, uid)
    with pytest.raises(AirflowException, match=f"'{uid}' finished with status '{status}'"):
        task.poke(_context(task))


def test_a_node_the_build_never_reported_runs_dbt_for_itself() -> None:
    task = _task(DbtRunWatcherOperator, "model.p.never_built")
    calls: list[int] = []
    task._fallback_to_non_watcher_run = lambda try_number, context: calls.append(try_number) or True
    assert task.poke(_context(task)) is True
    assert calls == [1]


def test_a_build_line_is_logged_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    log_dbt_line('{"info": {"msg": "1 of 3 OK created sql view model a", "level": "info", '
                 '"ts": "2026-12-04T00:00:25.172930Z"}}')
    log_dbt_line("not json at all")
    assert "1 of 3 OK created sql view model a" in caplog.text
    assert "not json at all" in caplog.text
