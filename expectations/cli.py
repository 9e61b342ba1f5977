"""`ecom quality`: run a layer's Great Expectations gate, build Data Docs.

Great Expectations is imported only when a command runs, so `ecom --help` stays fast.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from ecom.config import load_settings
from ecom.errors import UserError

console = Console(soft_wrap=True)  # one line per expectation, however long
app = typer.Typer(help="Great Expectations quality gates per layer, and their Data Docs.",
                  no_args_is_help=True)


PROJECT_DIR_HELP = "GE project root holding gx/ (default: expectations/ in the repository)."


class Layer(StrEnum):
    raw = "raw"
    staging = "staging"
    marts = "marts"


def parse_logical_date(text: str | None, today: date | None = None) -> date:
    """`--date` as a date; default: yesterday (UTC), the last complete day."""
    if not text:
        return (today or datetime.now(UTC).date()) - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--date {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-01-31.") \
            from None


@app.command("check")
def check(
    layer: Layer = typer.Argument(..., help="Which layer's checkpoint to run."),
    logical_date: str = typer.Option(
        None, "--date", help="Logical (UTC) day to validate, YYYY-MM-DD. Default: yesterday."
    ),
    show_all: bool = typer.Option(False, "--all", help="Also list the expectations that passed."),
    alert: bool = typer.Option(
        True, "--alert/--no-alert",
        help="When the gate fails, publish an alert to the alerts topic and post it to the "
             "webhook (ECOM_ALERT_WEBHOOK_URL, once per layer and day)."),
    project_dir: Path = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
) -> None:
    """Run the layer's checkpoint; exit 1 (naming each failed expectation) when it fails."""
    day = parse_logical_date(logical_date)
    settings = load_settings()
    with console.status(f"validating {layer.value} for {day} ..."):
        from expectations.gate import run_gate

        result = run_gate(settings, layer.value, day, publish=alert, project_root=project_dir)
    for outcome in result.outcomes if show_all else result.failed:
        style = "green" if outcome.success else "red"
        console.print(outcome.line(), style=style, markup=False, highlight=False)
    console.print(result.headline(), style="bold green" if result.success else "bold red",
                  markup=False, highlight=False)
    console.print(f"results: ops.data_quality_logs run_id = {result.run_id}", markup=False,
                  highlight=False)
    if not result.success and alert:
        console.print(f"alert published to {settings.topic_alerts}", markup=False)
        console.print(result.notification or "", markup=False, highlight=False)
    if result.data_docs:
        console.print(f"data docs: {result.data_docs}", markup=False, highlight=False)
    raise typer.Exit(0 if result.success else 1)


@app.command("docs")
def docs(
    project_dir: Path = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
) -> None:
    """Build the static Data Docs site (suites and stored results) and print its path."""
    from expectations.gate import build_data_docs

    settings = load_settings()
    with console.status("building Data Docs ..."):
        path = build_data_docs(settings, project_dir)
    print(path)
