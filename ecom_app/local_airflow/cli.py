"""`ecom airflow up|down|status` and `ecom pipeline run`.

Importing it stays cheap: Airflow runs in subprocesses (`airflow standalone`,
`airflow dags test`), never in this process.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import typer
from ecom_pipeline import DAG_ID
from rich.console import Console
from rich.table import Table

from ecom.config import load_settings
from ecom.errors import UserError
from ecom_app.local_airflow import standalone
from ecom_app.local_airflow.airflow_home import password_file
from ecom_app.local_airflow.runner import PipelineRun, run_days, summarise

console = Console()

airflow_app = typer.Typer(help="Local Airflow (standalone) against the embedded stack.",
                          no_args_is_help=True)
pipeline_app = typer.Typer(help="Run the daily pipeline DAG (ecommerce_analytics_pipeline).",
                           no_args_is_help=True)


@airflow_app.command("up")
def airflow_up() -> None:
    """Start Airflow standalone in the background (UI, scheduler, DAG processor)."""

    settings = load_settings()
    console.print(f"starting Airflow standalone on port {settings.airflow_port} ...")
    state = standalone.up(settings)
    console.print(f"Airflow UI:      {state.url}  (DAG: {standalone.dag_url(settings)})")
    if state.username:
        console.print(f"login:           {state.username} / {state.password}")
    console.print(f"password file:   {password_file(settings)}")
    console.print(f"AIRFLOW_HOME:    {state.home}")
    console.print(f"log:             {state.log_file}")
    console.print("The DAG starts paused: unpause it in the UI to schedule it daily at 02:00 UTC, "
                  "or run one day with `ecom pipeline run --date YYYY-MM-DD`.")


@airflow_app.command("down")
def airflow_down() -> None:
    """Stop the Airflow standalone started by `ecom airflow up`."""

    stopped = standalone.down(load_settings())
    console.print("stopped Airflow" if stopped else "Airflow was not running")


@airflow_app.command("status")
def airflow_status() -> None:
    """Show whether Airflow standalone runs, its URL and login."""

    state = standalone.status(load_settings())
    console.print(f"Airflow: {f'running (pid {state.pid})' if state.running else 'stopped'}")
    console.print(f"UI: {state.url}   AIRFLOW_HOME: {state.home}")
    if state.username:
        console.print(f"login: {state.username} / {state.password}")


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{value!r} is not a date: use YYYY-MM-DD, e.g. 2024-03-05.") from None


def days_between(first: date, last: date) -> list[date]:
    if last < first:
        raise UserError(f"--to {last} is before --date {first}: give an increasing range.")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def last_days(n: int, today: date) -> list[date]:
    """The n whole UTC days before today, oldest first."""
    if n < 1:
        raise UserError("--last needs a number of days >= 1.")
    return [today - timedelta(days=i) for i in range(n, 0, -1)]


def chosen_days(day: str | None, to: str | None, last: int | None, today: date) -> list[date]:
    if (day is None) == (last is None):
        raise UserError("Give either --date YYYY-MM-DD (optionally with --to) or --last N.")
    if last is not None:
        if to:
            raise UserError("--to goes with --date, not with --last.")
        return last_days(last, today)
    first = parse_day(day)  # type: ignore[arg-type]
    return days_between(first, parse_day(to)) if to else [first]


@pipeline_app.command("run")
def pipeline_run(
    day: str | None = typer.Option(None, "--date",
                                   help="Logical day to process (YYYY-MM-DD, UTC)."),
    to: str | None = typer.Option(None, "--to", help="Also run every day up to this one."),
    last: int | None = typer.Option(None, "--last",
                                    help="Run the N days before today (UTC), oldest first."),
    dag: str = typer.Option(DAG_ID, "--dag",
                            help="The DAG to run: ecommerce_analytics_pipeline, or "
                                 "ecommerce_maintenance (backups, archive, retention)."),
) -> None:
    """Run the DAG once per logical day (oldest first, one at a time, as `airflow dags
    test` does); print each task's result.

    Each run catches up raw from Kafka (no Spark when the stream already landed
    everything), gates and transforms, and publishes that day."""

    settings = load_settings()
    days = chosen_days(day, to, last, datetime.now(UTC).date())
    started: dict[str, float] = {}
    ended: list[str] = []

    def on_start(current: date) -> None:
        started.clear()
        ended.clear()
        console.rule(f"{dag}  {current}")

    def on_progress(kind: str, task_id: str) -> None:
        if kind == "start":
            started[task_id] = time.monotonic()
            return
        ended.append(task_id)
        took = time.monotonic() - started.get(task_id, time.monotonic())
        console.print(f"  [{len(ended):>2}] {task_id}  {took:.1f} s", soft_wrap=True,
                      highlight=False)

    runs = run_days(settings, days, on_progress=on_progress, on_start=on_start,
                    on_run=print_run, dag_id=dag)
    if len(days) > 1:
        console.print(f"{len(days)} days, oldest first, in "
                      f"{sum(r.elapsed_s for r in runs):.0f} s of DAG runs")
    failed = [r.day for r in runs if not r.succeeded]
    if failed:
        raise UserError(
            f"The {'pipeline' if dag == DAG_ID else dag} failed for "
            f"{', '.join(map(str, failed))}: see the errors above, "
            "ops.pipeline_execution_logs and the run log."
        )


def print_run(run: PipelineRun) -> None:

    table = Table(title=f"run {run.run_id}: {run.state} in {run.elapsed_s:.0f} s")
    table.add_column("task", overflow="fold", ratio=3)
    table.add_column("state")
    table.add_column("try", justify="right")
    table.add_column("s", justify="right")
    table.add_column("rows", justify="right")
    table.add_column("error", overflow="fold", ratio=4)
    for row in summarise(run.tasks):
        colour = {"success": "green", "failed": "red", "upstream_failed": "yellow"}.get(
            row.state, "white")
        error = row.error_text.strip().splitlines()[0][:300] if row.error_text else ""
        table.add_row(
            row.label, f"[{colour}]{row.state}[/]", str(row.tries or ""),
            f"{row.duration_s:.1f}" if row.duration_s is not None else "",
            str(row.rows_affected) if row.rows_affected is not None else "", error,
        )
    console.print(table)
    console.print(f"full log: {run.log_file}")
