"""`ecom pipeline run`: one DAG run for a logical day with `airflow dags test`, then the
per-task results (Airflow's task states joined with `ops.pipeline_execution_logs`)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from ecom_pipeline import DAG_ID
from ecom_pipeline.execution_log import ExecutionLogRow, rows_for_run

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError
from ecom.kafka_admin import wait_for_broker
from ecom_app.local_airflow.airflow_home import (
    AIRFLOW_BIN,
    airflow_env,
    home_dir,
    prepare,
    run_airflow,
)
from ecom_app.local_airflow.manifest import ensure_manifest

START_RE = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
END_RE = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")
FINISHED_RE = re.compile(r"DagRun Finished: .*?run_id=([^,]+),.*?state=(\w+)")


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


def parse_finished(output: str) -> tuple[str, str] | None:
    """(run_id, state) from the `DagRun Finished` line."""
    found = FINISHED_RE.findall(output)
    return found[-1] if found else None


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
        worst = min(counts, key=lambda st: STATE_SEVERITY.index(st)
                    if st in STATE_SEVERITY else len(STATE_SEVERITY))
        summary = ", ".join(f"{n} {st}" for st, n in sorted(counts.items()))
        durations = [m.duration_s for m in members if m.duration_s is not None]
        touched = [m.rows_affected for m in members if m.rows_affected is not None]
        out.append(SummaryRow(f"{row.label} ({len(members)} dbt tasks: {summary})", worst,
                              None, sum(durations) if durations else None,
                              sum(touched) if touched else None, None))
        out.extend(SummaryRow(f"  {m.task_id}", m.state, m.try_number, m.duration_s,
                              m.rows_affected, m.error_text)
                   for m in members if m.state == "failed")
    return out


def task_states(settings: Settings, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, str]]:
    proc = run_airflow(settings, "tasks", "states-for-dag-run", dag_id, run_id, "-o", "json")
    start = proc.stdout.find("[")
    return json.loads(proc.stdout[start:]) if start >= 0 else []


def preflight(settings: Settings) -> None:
    """Fail fast, in one sentence, when the warehouse or the broker is not there (rather
    than after a task's retries)."""
    connect(settings, "loader").close()
    wait_for_broker(settings, timeout_s=10)


def run_day(settings: Settings, day: date,
            on_progress: Callable[[str, str], None] | None = None,
            dag_id: str = DAG_ID) -> PipelineRun:
    """Run the DAG (the pipeline, or another of the folder) once for `day` (blocking) and
    collect per-task results."""
    preflight(settings)
    ensure_manifest(settings)
    prepare(settings)
    logs_dir = home_dir(settings) / "logs" / "pipeline-runs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log_file = logs_dir / f"{day.isoformat()}_{stamp}.log"
    started = time.monotonic()
    output: list[str] = []
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [str(AIRFLOW_BIN), "dags", "test", dag_id, day.isoformat()],
            # no DeadlineAlert: `dags test` never evaluates one and, in Airflow 3.3.2,
            # fails a successful run of a DAG that has one (apache/airflow#73428)
            env=airflow_env(settings.replace(pipeline_deadline_minutes=0)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, bufsize=1, cwd=home_dir(settings),
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if "DagRun Finished" in line or "[DAG TEST]" in line:
                output.append(line)
            if on_progress and (event := parse_progress(line)):
                on_progress(*event)
        proc.wait()
    elapsed = time.monotonic() - started
    finished = parse_finished("".join(output))
    if finished is None:
        raise UserError(
            f"`airflow dags test {dag_id} {day}` ended (exit {proc.returncode}) without "
            f"finishing a DAG run; see {log_file}."
        )
    run_id, state = finished
    tasks = merge_results(task_states(settings, run_id, dag_id),
                          rows_for_run(settings, dag_id, run_id))
    return PipelineRun(day, state, run_id, elapsed, log_file, tasks)
