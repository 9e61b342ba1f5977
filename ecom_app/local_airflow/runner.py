"""`ecom pipeline run`: one DAG run per logical day, in one Airflow process
(`ecom_app.local_airflow.dag_test`, what `airflow dags test` does), then the per-task
results (Airflow's task states joined with `ops.pipeline_execution_logs`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ecom_pipeline import DAG_ID
from ecom_pipeline.execution_log import ExecutionLogRow, rows_for_run

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError
from ecom.kafka_admin import wait_for_broker
from ecom_app.local_airflow.airflow_home import (
    airflow_env,
    home_dir,
    prepare,
    run_airflow,
)
from ecom_app.local_airflow.dag_test import RUN_MARK, START_MARK
from ecom_app.local_airflow.manifest import ensure_manifest

START_RE = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
END_RE = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    state: str
    try_number: int | None = None
    duration_s: float | None = None
    rows_affected: int | None = None
    error_text: str | None = None


@dataclass
class PipelineRun:
    day: date
    state: str
    run_id: str | None
    elapsed_s: float
    log_file: Path
    tasks: list[TaskResult] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


def parse_progress(line: str) -> tuple[str, str] | None:
    """('start'|'end', task_id) for the progress lines of `airflow dags test`."""
    if match := START_RE.search(line):
        return "start", match.group(1)
    if match := END_RE.search(line):
        return "end", match.group(1)
    return None


def merge_results(states: list[dict[str, str]], logs: list[ExecutionLogRow]) -> list[TaskResult]:
    """Airflow's state per task (every task, also those that never ran), enriched with
    the latest execution-log row of each task; ordered by start, never-run tasks last."""
    by_task = {row.task_id: row for row in logs}
    results = []
    for ti in states:
        row = by_task.get(ti["task_id"])
        results.append(TaskResult(
            task_id=ti["task_id"], state=ti.get("state") or "none",
            try_number=row.try_number if row else None,
            duration_s=row.duration_s if row else None,
            rows_affected=row.rows_affected if row else None,
            error_text=row.error_text if row else None,
        ))
    order = {row.task_id: i for i, row in enumerate(logs)}
    return sorted(results, key=lambda r: (order.get(r.task_id, len(order)), r.task_id))


@dataclass(frozen=True)
class SummaryRow:
    """One line of the printed result: a task, or a Cosmos group's tasks folded together."""

    label: str
    state: str
    tries: int | None
    duration_s: float | None
    rows_affected: int | None
    error_text: str | None


#: the task of a Cosmos watcher group that runs its one `dbt build`
BUILD_TASK = "dbt_producer_watcher"

STATE_SEVERITY = ("failed", "upstream_failed", "up_for_retry", "running", "none", "skipped",
                  "success")


def summarise(tasks: list[TaskResult]) -> list[SummaryRow]:
    """Tasks in order; those inside a task group (`group.model.run`) folded into one row per
    group, except failed ones, which stay listed so their error shows."""
    rows: list[SummaryRow] = []
    groups: dict[str, list[TaskResult]] = {}
    for t in tasks:
        group, dot, _ = t.task_id.partition(".")
        if not dot:
            rows.append(SummaryRow(t.task_id, t.state, t.try_number, t.duration_s,
                                   t.rows_affected, t.error_text))
            continue
        if group not in groups:
            groups[group] = []
            rows.append(SummaryRow(group, "", None, None, None, None))  # placeholder
        groups[group].append(t)
    out: list[SummaryRow] = []
    for row in rows:
        members = groups.get(row.label) if row.state == "" else None
        if members is None:
            out.append(row)
            continue
        counts: dict[str, int] = {}
        for m in members:
            counts[m.state] = counts.get(m.state, 0) + 1
        # a watcher group's outcome is its model and test tasks' (a failed build whose
        # nodes recovered on retry did not stop the pipeline); the build stays listed
        shown = [m.state for m in members if not m.task_id.endswith(f".{BUILD_TASK}")]
        worst = min(shown or counts, key=lambda st: STATE_SEVERITY.index(st)
                    if st in STATE_SEVERITY else len(STATE_SEVERITY))
        summary = ", ".join(f"{n} {st}" for st, n in sorted(counts.items()))
        durations = [m.duration_s for m in members if m.duration_s is not None]
        # in watcher mode the group's dbt build reports the total; its tasks, each node's
        builds = [m for m in members if m.task_id.endswith(f".{BUILD_TASK}")]
        touched = [m.rows_affected for m in (builds or members) if m.rows_affected is not None]
        out.append(SummaryRow(f"{row.label} ({len(members)} dbt tasks: {summary})", worst,
                              None, sum(durations) if durations else None,
                              sum(touched) if touched else None, None))
        out.extend(SummaryRow(f"  {m.task_id}", m.state, m.try_number, m.duration_s,
                              m.rows_affected, m.error_text)
                   for m in members if m.state == "failed")
    return out


def task_states(settings: Settings, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, str]]:
    """Every task's state in a run, asked with the Airflow CLI (for runs made elsewhere)."""
    proc = run_airflow(settings, "tasks", "states-for-dag-run", dag_id, run_id, "-o", "json")
    start = proc.stdout.find("[")
    return json.loads(proc.stdout[start:]) if start >= 0 else []


def preflight(settings: Settings) -> None:
    """Fail fast, in one sentence, when the warehouse or the broker is not there (rather
    than after a task's retries)."""
    connect(settings, "loader").close()
    wait_for_broker(settings, timeout_s=10)


def parse_mark(line: str) -> tuple[str, dict[str, Any]] | None:
    """('start'|'run', payload) for the lines `dag_test` prints around each run."""
    for kind, mark in (("start", START_MARK), ("run", RUN_MARK)):
        if line.startswith(mark):
            return kind, json.loads(line[len(mark):])
    return None


def run_days(settings: Settings, days: list[date],
             on_progress: Callable[[str, str], None] | None = None,
             on_start: Callable[[date], None] | None = None,
             on_run: Callable[[PipelineRun], None] | None = None,
             dag_id: str = DAG_ID) -> list[PipelineRun]:
    """Run the DAG (the pipeline, or another of the folder) once per day, in the given
    order, in one Airflow process (blocking; see `ecom_app.local_airflow.dag_test`); each
    run's per-task results, one log file per day."""
    preflight(settings)
    ensure_manifest(settings)
    prepare(settings)
    logs_dir = home_dir(settings) / "logs" / "pipeline-runs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log_files = {day: logs_dir / f"{day.isoformat()}_{stamp}.log" for day in days}
    runs: list[PipelineRun] = []
    log = open(log_files[days[0]], "w")  # noqa: SIM115 - switched per day below
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecom_app.local_airflow.dag_test", "--dag", dag_id,
             *(d.isoformat() for d in days)],
            env=airflow_env(settings),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, bufsize=1, cwd=home_dir(settings),
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            mark = parse_mark(line)
            if mark and mark[0] == "start":
                day = date.fromisoformat(mark[1]["day"])
                if day != days[0]:
                    log.close()
                    log = open(log_files[day], "w")  # noqa: SIM115
                    started = time.monotonic()
                if on_start:
                    on_start(day)
                continue
            log.write(line)
            if mark and mark[0] == "run":
                day = date.fromisoformat(mark[1]["day"])
                run_id = mark[1]["run_id"]
                run = PipelineRun(day, mark[1]["state"], run_id, time.monotonic() - started,
                                  log_files[day], merge_results(
                                      mark[1]["tasks"], rows_for_run(settings, dag_id, run_id)))
                runs.append(run)
                if on_run:
                    on_run(run)
            elif on_progress and (event := parse_progress(line)):
                on_progress(*event)
        proc.wait()
    finally:
        log.close()
    if len(runs) < len(days):
        missing = days[len(runs)]
        raise UserError(
            f"The DAG runs stopped (exit {proc.returncode}) before finishing the run for "
            f"{missing}; see {log_files[missing]}."
        )
    return runs


def run_day(settings: Settings, day: date,
            on_progress: Callable[[str, str], None] | None = None,
            dag_id: str = DAG_ID) -> PipelineRun:
    """Run the DAG once for `day` (blocking) and collect per-task results."""
    return run_days(settings, [day], on_progress, dag_id=dag_id)[0]
