"""Pure logic of the pipeline DAG's helpers (`ecom_pipeline`, in airflow/dags) and of the
local Airflow tooling (`ecom_app.local_airflow`), no Airflow import."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from ecom_pipeline import alerts, days, publish
from ecom_pipeline.dbt_results import node_results, rows_from_run_results
from ecom_pipeline.execution_log import (
    MAX_ERROR_CHARS,
    ExecutionLogRow,
    TaskAttempt,
    clip_error,
)

from ecom.errors import UserError
from ecom_app.local_airflow import cli, dag_test, manifest, runner

ATTEMPT = TaskAttempt("ecommerce_analytics_pipeline", "manual__x", "gate_raw", 1,
                      date(2024, 3, 5))


def test_logical_day_is_the_utc_day_of_the_logical_date() -> None:
    # the scheduled 02:00 run on D+1 has logical date D 02:00 (cron data interval)
    assert days.logical_day({"logical_date": datetime(2024, 3, 5, 2, tzinfo=UTC)}) == date(
        2024, 3, 5)
    # `airflow dags test <dag> 2024-03-05`: logical date midnight
    assert days.logical_day({"logical_date": datetime(2024, 3, 5, tzinfo=UTC)}) == date(
        2024, 3, 5)


def test_logical_day_falls_back_to_interval_then_run_after() -> None:
    ctx = {"logical_date": None, "data_interval_start": datetime(2024, 3, 6, 2, tzinfo=UTC)}
    assert days.logical_day(ctx) == date(2024, 3, 6)
    ctx = {"logical_date": None, "dag_run": SimpleNamespace(
        run_after=datetime(2024, 3, 7, 23, 59, tzinfo=UTC))}
    assert days.logical_day(ctx) == date(2024, 3, 7)
    with pytest.raises(ValueError):
        days.logical_day({})


def test_day_bounds_are_half_open_utc_days() -> None:
    start, end = days.day_bounds(date(2024, 2, 28))
    assert start == datetime(2024, 2, 28, tzinfo=UTC)
    assert end == datetime(2024, 2, 29, tzinfo=UTC)


def test_gate_alert_is_the_gates_own_plus_the_airflow_coordinates() -> None:
    gate_alert = {"kind": "data_quality_alert", "layer": "raw", "run_id": "raw-2024-03-05-x",
                  "failed_count": 1,
                  "failed": [{"expectation": "expect_column_values_to_be_in_set",
                              "column": "event_type", "unexpected_count": 3}]}
    alert = alerts.task_failure_alert(ATTEMPT, "GateFailed: raw gate FAILED",
                                      gate_alert=gate_alert,
                                      now=datetime(2024, 3, 6, tzinfo=UTC))
    assert {k: alert[k] for k in gate_alert} == gate_alert  # the gate's fields unchanged
    assert alert["dag_run_id"] == "manual__x" and alert["task_id"] == "gate_raw"
    assert alert["logical_date"] == "2024-03-05"
    assert alert["alerted_at"] == "2024-03-06T00:00:00+00:00"
    assert alerts.alert_key(ATTEMPT) == "ecommerce_analytics_pipeline|2024-03-05|gate_raw"


def test_other_failures_alert_with_task_and_error_only() -> None:
    alert = alerts.task_failure_alert(ATTEMPT, "UserError: broker down")
    assert alert["kind"] == "pipeline_task_failed"
    assert alert["task_id"] == "gate_raw"
    assert alert["error"] == "UserError: broker down"
    assert "failed" not in alert


def test_clip_error_keeps_both_ends() -> None:
    assert clip_error(None) is None
    assert clip_error("short") == "short"
    text = "A" * 5000 + "TAIL"
    clipped = clip_error(text)
    assert clipped is not None
    assert clipped.startswith("A") and clipped.endswith("TAIL")
    assert len(clipped) < MAX_ERROR_CHARS + 100


def test_publish_key_is_the_mart_grain_with_a_named_null_category() -> None:
    row = {"date": date(2024, 3, 5), "category": "Books", "event_type": "purchase"}
    assert publish.message_key(row) == "2024-03-05|Books|purchase"
    assert publish.message_key({**row, "category": None}) == "2024-03-05|(none)|purchase"


def test_rows_from_run_results_sums_models_and_test_failures() -> None:
    results = {"results": [
        {"unique_id": "model.p.a", "adapter_response": {"rows_affected": 120}},
        {"unique_id": "model.p.v", "adapter_response": {"rows_affected": -1}},  # a view
        {"unique_id": "model.p.b", "adapter_response": {"rows_affected": 5}},
    ]}
    assert rows_from_run_results(results) == 125
    tests = {"results": [{"unique_id": "test.p.t1", "failures": 0},
                         {"unique_id": "test.p.t2", "failures": 3}]}
    assert rows_from_run_results(tests) == 3
    assert rows_from_run_results({"results": [
        {"unique_id": "model.p.v", "adapter_response": {"rows_affected": -1}}]}) is None


def test_progress_lines_and_run_marks_are_parsed() -> None:
    line = ("2026-11-25T22:58:59Z [info ] [DAG TEST] starting task_id=transform_marts."
            "daily_aggregations.run map_index=-1 [airflow.sdk.definitions.dag]")
    assert runner.parse_progress(line) == ("start", "transform_marts.daily_aggregations.run")
    assert runner.parse_progress("[DAG TEST] end task task_id=publish map_index=-1") == (
        "end", "publish")
    assert runner.parse_progress("[DAG TEST] running task <TaskInstance ...>") is None
    assert runner.parse_mark(dag_test.START_MARK + '{"day": "2024-03-05"}\n') == (
        "start", {"day": "2024-03-05"})
    run = {"day": "2024-03-05", "run_id": "manual__x", "state": "failed", "tasks": []}
    assert runner.parse_mark(dag_test.RUN_MARK + json.dumps(run)) == ("run", run)
    assert runner.parse_mark("[DAG TEST] end task task_id=report") is None


def test_the_build_records_each_nodes_outcome_for_its_task() -> None:
    results = {"results": [
        {"unique_id": "model.p.a", "status": "success", "message": "INSERT 0 120",
         "execution_time": 0.5, "compiled_code": "select 1",
         "adapter_response": {"rows_affected": 120}},
        {"unique_id": "model.p.v", "status": "error", "message": "boom",
         "adapter_response": {"rows_affected": -1}},  # a view
        {"unique_id": "model.p.w", "status": "skipped"},  # after v's failure
        {"unique_id": "test.p.not_null_a", "status": "pass", "failures": 0},
        {"unique_id": "test.p.unique_a", "status": "warn", "failures": 2},
        {"unique_id": "test.p.a_vs_b", "status": "fail", "failures": 1,
         "compiled_code": "select 2"},
        {"unique_id": "test.p.not_null_w", "status": "skipped"},
    ]}
    per_model = {"model.p.a": ["test.p.not_null_a", "test.p.unique_a"],
                 "model.p.b": ["test.p.a_vs_b"],
                 "test.p.a_vs_b": ["test.p.a_vs_b"],  # a test with a task of its own
                 "model.p.w": ["test.p.not_null_w"],
                 "model.p.x": ["test.p.never_ran"], "model.p.v": []}
    out = node_results(results, per_model)
    assert out["model.p.a"] == {"status": "success", "message": "INSERT 0 120",
                                "seconds": 0.5, "rows": 120, "compiled_sql": "select 1"}
    assert out["model.p.v"]["status"] == "error" and out["model.p.v"]["rows"] is None
    assert out["model.p.w"]["status"] == "skipped"
    assert out["test.p.a_vs_b"]["compiled_sql"] == "select 2"  # its task shows its SQL
    assert "test.p.not_null_a" not in out  # shown by its model's tests task
    # a model's tests: pass when all passed (a warning passes), fail otherwise
    assert out["model.p.a:tests"] == {"status": "pass", "tests": 2, "reported": 2, "rows": 2}
    assert out["model.p.b:tests"]["status"] == "fail"
    assert out["test.p.a_vs_b:tests"] == {"status": "fail", "tests": 1, "reported": 1,
                                          "rows": 1}
    assert out["model.p.w:tests"]["status"] == "fail"  # skipped after an upstream failure
    assert out["model.p.x:tests"] == {"status": None, "tests": 1, "reported": 0,
                                      "rows": None}
    assert "model.p.v:tests" not in out


def _log_row(task_id: str, minute: int, status: str = "success",
             error: str | None = None) -> ExecutionLogRow:
    at = datetime(2024, 3, 6, 2, minute, tzinfo=UTC)
    return ExecutionLogRow(task_id, 1, status, at, at, 1.5, 10, error)


def test_results_keep_every_task_and_fold_dbt_groups() -> None:
    states = [
        {"task_id": "report", "state": "upstream_failed"},
        {"task_id": "extract", "state": "success"},
        {"task_id": "gate_raw", "state": "success"},
        {"task_id": "transform_staging.stg_a.run", "state": "success"},
        {"task_id": "transform_staging.stg_a.test", "state": "failed"},
        {"task_id": "transform_staging.stg_b.run", "state": "success"},
    ]
    logs = [_log_row("extract", 0), _log_row("gate_raw", 1),
            _log_row("transform_staging.stg_a.run", 2),
            _log_row("transform_staging.stg_a.test", 3, "failed", "dbt test failed\nmore"),
            _log_row("transform_staging.stg_b.run", 4)]
    merged = runner.merge_results(states, logs)
    assert [t.task_id for t in merged][:2] == ["extract", "gate_raw"]
    assert merged[-1].task_id == "report" and merged[-1].rows_affected is None
    rows = runner.summarise(merged)
    labels = [r.label for r in rows]
    assert labels[0:2] == ["extract", "gate_raw"]
    group = rows[2]
    assert group.label.startswith("transform_staging (3 dbt tasks: 1 failed, 2 success)")
    assert group.state == "failed"
    assert group.rows_affected == 30
    assert rows[3].label.strip() == "transform_staging.stg_a.test"
    assert rows[3].error_text.startswith("dbt test failed")
    assert rows[-1].label == "report" and rows[-1].state == "upstream_failed"


def test_a_watcher_group_shows_its_nodes_outcome_and_the_builds_rows() -> None:
    """The group's build failed on a model whose task then recovered on retry: the group
    did not stop the pipeline, its row says so, and the failed build stays listed."""
    build = "transform_staging.dbt_producer_watcher"
    states = [{"task_id": t, "state": st} for t, st in (
        (build, "failed"), (f"{build}_done", "success"),
        ("transform_staging.stg_a.run", "success"), ("transform_staging.stg_a.test", "success"))]
    logs = [ExecutionLogRow(build, 1, "failed", None, None, 9.0, None, "dbt failed"),
            ExecutionLogRow("transform_staging.stg_a.run", 2, "success", None, None, 2.0, 7,
                            None)]
    rows = runner.summarise(runner.merge_results(states, logs))
    assert rows[0].state == "success" and "1 failed, 3 success" in rows[0].label
    assert rows[0].rows_affected is None  # the build's total, which it could not report
    assert rows[1].label.strip() == build and rows[1].error_text == "dbt failed"


def test_cli_dates_are_validated() -> None:
    assert cli.parse_day("2024-03-05") == date(2024, 3, 5)
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        cli.parse_day("05/03/2024")
    assert cli.days_between(date(2024, 2, 28), date(2024, 3, 1)) == [
        date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)]
    with pytest.raises(UserError, match="before"):
        cli.days_between(date(2024, 3, 2), date(2024, 3, 1))


def test_cli_picks_the_days_to_run() -> None:
    today = date(2024, 3, 1)
    assert cli.chosen_days(None, None, 3, today) == [
        date(2024, 2, 27), date(2024, 2, 28), date(2024, 2, 29)]
    assert cli.chosen_days("2024-02-01", None, None, today) == [date(2024, 2, 1)]
    assert cli.chosen_days("2024-02-01", "2024-02-02", None, today) == [
        date(2024, 2, 1), date(2024, 2, 2)]
    for args in ((None, None, None), ("2024-02-01", None, 2), (None, "2024-02-02", 2)):
        with pytest.raises(UserError):
            cli.chosen_days(*args, today)
    with pytest.raises(UserError, match=">= 1"):
        cli.chosen_days(None, None, 0, today)


def test_manifest_is_stale_when_missing_or_older_than_a_model(tmp_path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    model = tmp_path / "models" / "m.sql"
    model.write_text("select 1")
    assert manifest.is_stale(tmp_path)
    target = manifest.manifest_path(tmp_path)
    target.parent.mkdir()
    target.write_text("{}")
    past = time.time() - 60
    os.utime(model, (past, past))
    os.utime(tmp_path / "dbt_project.yml", (past, past))
    assert not manifest.is_stale(tmp_path)
    model.write_text("select 2")  # edited after the manifest was written
    assert manifest.is_stale(tmp_path)


def test_report_revenue_is_decimal() -> None:
    from ecom_pipeline.report import RunReport

    report = RunReport("d", "r", date(2024, 3, 5), "success", 10, 1, 10, Decimal("1.50"),
                       3, 3, 8, 8)
    assert report.total_revenue == Decimal("1.50")


@pytest.mark.parametrize(("task_id", "alerted"), [
    ("transform_staging.dbt_producer_watcher", False),
    ("transform_staging.int_purchase_lines.run", True),
    ("extract", True),
])
def test_a_failed_dbt_build_alerts_no_one_its_node_tasks_do(
        monkeypatch: pytest.MonkeyPatch, task_id: str, alerted: bool) -> None:
    """A group's build is never retried and its model/test tasks retry what it failed: its
    own failure is logged, not sent; a node task (or any other) failing for good is sent."""
    from ecom_pipeline import callbacks

    done: list[tuple[str, ...]] = []
    monkeypatch.setattr(callbacks, "_finish",
                        lambda _ctx, status, details=(): done.append(("row", status, *details)))
    monkeypatch.setattr(callbacks, "_settings", lambda: None)
    monkeypatch.setattr(callbacks.notifications, "dbt_failures", lambda _ti: [
        {"kind": "model", "name": "int_purchase_lines", "status": "error",
         "message": "permission denied"}])
    monkeypatch.setattr(callbacks.notifications, "task_failed",
                        lambda _ctx, alert: done.append(("webhook", alert["task_id"])))
    monkeypatch.setattr(callbacks.alerts, "publish_alert",
                        lambda _s, _attempt, alert: done.append(("topic", alert["task_id"])))
    ti = SimpleNamespace(dag_id="ecommerce_analytics_pipeline", run_id="manual__1",
                         task_id=task_id, try_number=3)
    callbacks.on_failure({"ti": ti, "logical_date": datetime(2024, 3, 5, tzinfo=UTC),
                          "exception": RuntimeError("dbt failed")})
    if alerted:
        assert done == [("row", "failed"), ("webhook", task_id), ("topic", task_id)]
    else:  # no message; its log row names what dbt failed
        assert done == [("row", "failed",
                         "dbt model int_purchase_lines: error: permission denied")]
