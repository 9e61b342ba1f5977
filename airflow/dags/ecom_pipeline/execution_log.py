"""Rows of `ops.pipeline_execution_logs`: one per task attempt (start, end, status, rows, error).

An attempt's row is inserted when the task starts (status `running`) and completed when
it ends (`success`, `failed` or `up_for_retry`). Written as the `loader` role, on one
connection per process (`_write`): a run in Airflow's test mode has ~50 tasks in
one process, and a new connection for each of their two rows cost ~0.05 s, most of a
dbt model's task in watcher mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg2

from ecom.config import Settings
from ecom.db import connect, connection

MAX_ERROR_CHARS = 4000

#: XCom key under which a task leaves the row count its log row records
ROWS_XCOM_KEY = "rows_affected"


@dataclass(frozen=True)
class TaskAttempt:
    """Which task attempt a log row describes."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    logical_date: date | None


@dataclass(frozen=True)
class ExecutionLogRow:
    task_id: str
    try_number: int | None
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    rows_affected: int | None
    error_text: str | None


def clip_error(text: str | None) -> str | None:
    """Error text short enough for a log row, keeping its start and its end."""
    if not text:
        return None
    if len(text) <= MAX_ERROR_CHARS:
        return text
    half = MAX_ERROR_CHARS // 2
    return f"{text[:half]}\n...[{len(text) - MAX_ERROR_CHARS} chars cut]...\n{text[-half:]}"


_connections: dict[str, Any] = {}


def _write(settings: Settings, statements: Callable[[Any], None]) -> None:
    """Run `statements(cursor)` in one transaction on this process's loader connection; a
    connection that went stale since its last use (the server restarted) is replaced and
    the transaction tried once more."""
    key = f"{os.getpid()} {settings.dsn('loader')}"  # never a connection from before a fork
    for attempt in (1, 2):
        conn = _connections.get(key)
        reused = conn is not None and not conn.closed
        if not reused:
            conn = _connections[key] = connect(settings, "loader")
        try:
            with conn, conn.cursor() as cur:
                statements(cur)
            return
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            conn.close()
            if not reused or attempt == 2:
                raise


def record_start(settings: Settings, attempt: TaskAttempt, started_at: datetime) -> None:
    def insert(cur: Any) -> None:
        cur.execute(
            """insert into ops.pipeline_execution_logs
                   (dag_id, run_id, task_id, try_number, logical_date, status, started_at)
               values (%s, %s, %s, %s, %s, 'running', %s)""",
            (attempt.dag_id, attempt.run_id, attempt.task_id, attempt.try_number,
             attempt.logical_date, started_at),
        )

    _write(settings, insert)


def record_end(settings: Settings, attempt: TaskAttempt, status: str, *,
               started_at: datetime | None, ended_at: datetime,
               rows_affected: int | None = None, error_text: str | None = None) -> None:
    """Complete the attempt's `running` row, or insert a complete one if there is none."""
    error = clip_error(error_text)
    key = (attempt.dag_id, attempt.run_id, attempt.task_id, attempt.try_number)

    def complete(cur: Any) -> None:
        cur.execute(
            """update ops.pipeline_execution_logs
                  set status = %s, ended_at = %s,
                      started_at = coalesce(started_at, %s),
                      duration_s = extract(epoch from %s - coalesce(started_at, %s)),
                      rows_affected = %s, error_text = %s
                where log_id = (select max(log_id) from ops.pipeline_execution_logs
                                 where dag_id = %s and run_id = %s and task_id = %s
                                   and try_number = %s and status = 'running')""",
            (status, ended_at, started_at, ended_at, started_at, rows_affected, error, *key),
        )
        if cur.rowcount:
            return
        duration = (ended_at - started_at).total_seconds() if started_at else None
        cur.execute(
            """insert into ops.pipeline_execution_logs
                   (dag_id, run_id, task_id, try_number, logical_date, status, started_at,
                    ended_at, duration_s, rows_affected, error_text)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (*key, attempt.logical_date, status, started_at, ended_at, duration,
             rows_affected, error),
        )

    _write(settings, complete)


def rows_for_run(settings: Settings, dag_id: str, run_id: str) -> list[ExecutionLogRow]:
    """The latest row of each task of a run, in start order."""
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute(
            """select distinct on (task_id) task_id, try_number, status, started_at, ended_at,
                      duration_s, rows_affected, error_text
                 from ops.pipeline_execution_logs
                where dag_id = %s and run_id = %s
                order by task_id, log_id desc""",
            (dag_id, run_id),
        )
        rows = [ExecutionLogRow(*r) for r in cur.fetchall()]
    return sorted(rows, key=lambda r: (r.started_at or r.ended_at or datetime.max.replace(
        tzinfo=UTC)))
