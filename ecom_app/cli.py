"""`ecom`: the one command-line entry point, at the top of the layers (the composition root).

Each stage contributes its sub-command group (`simulate`, `ingest`, `quality`); this module
adds the commands that span stages: the stack, the demo, local Airflow and the pipeline.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from ecom.config import Settings, load_settings
from ecom.errors import UserError
from ecom.kafka_admin import ensure_topics
from ecom.stack.manager import StackStatus, down, status_of, up
from ecom.warehouse.migrate import migrate
from ecom_app.dashboard import dashboard_app
from ecom_app.demo import DemoPlan, run_demo
from ecom_app.local_airflow.cli import airflow_app, pipeline_app
from ecom_app.metrics.cli import metrics_app
from ecom_app.warehouse_cli import add_commands as add_warehouse_security_commands
from expectations.cli import app as quality_app
from ingestion.cli import app as ingest_app
from ingestion.cluster_cli import app as spark_app
from operations.cli import add_backup_commands, archive_app, maintenance_app
from simulator.cli import app as simulate_app

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    help="E-commerce analytics warehouse: simulate, ingest, transform, validate, orchestrate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="Embedded PostgreSQL + Kafka-protocol broker (no Docker).",
                        no_args_is_help=True)
kafka_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
warehouse_app = typer.Typer(help="Warehouse landing schema and roles; backups and restore.",
                            no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(kafka_app, name="kafka")
app.add_typer(warehouse_app, name="warehouse")
add_warehouse_security_commands(warehouse_app)
app.add_typer(simulate_app, name="simulate")
app.add_typer(ingest_app, name="ingest")
app.add_typer(quality_app, name="quality")
app.add_typer(airflow_app, name="airflow")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(archive_app, name="archive")
add_backup_commands(warehouse_app)
app.add_typer(spark_app, name="spark")
app.add_typer(metrics_app, name="metrics")
app.add_typer(dashboard_app, name="dashboard")

_state: dict[str, bool] = {"verbose": False}


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
) -> None:
    _state["verbose"] = verbose


def settings() -> Settings:
    """The settings for this invocation (built from the environment once)."""
    return load_settings()


def print_stack_status(status: StackStatus) -> None:
    table = Table(title="ecom stack", show_header=True)
    table.add_column("component")
    table.add_column("state")
    table.add_row("postgresql", status.postgres)
    if status.backups:
        table.add_row("  backups", status.backups)
    table.add_row("kafka", status.kafka)
    for name, partitions in status.topics.items():
        table.add_row(f"  topic {name}", f"{partitions} partition(s)")
    console.print(table)
    for note in status.notes:
        console.print(f"  - {note}")


@stack_app.command("up")
def stack_up() -> None:
    """Start PostgreSQL and the broker (if embedded), apply migrations, create topics."""
    _, status = up(settings())
    print_stack_status(status)


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services that `ecom stack up` started."""
    stopped = down(settings())
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Show both services and the topics with their partition counts."""
    print_stack_status(status_of(settings()))


@kafka_app.command("init")
def kafka_init() -> None:
    """Create the project's topics (idempotent)."""
    for topic in ensure_topics(settings()):
        state = "created" if topic.created else "present"
        console.print(f"{topic.name}: {topic.partitions} partition(s), {state}")


@warehouse_app.command("migrate")
def warehouse_migrate(
    wait: float = typer.Option(
        0, "--wait", help="Seconds to keep retrying the first connection while PostgreSQL "
                          "is still starting (a container that just came up)."),
) -> None:
    """Apply pending landing-schema migrations and set role passwords (idempotent)."""
    applied = migrate(settings(), wait_s=wait)
    console.print(f"applied: {', '.join(applied) if applied else 'nothing pending'}")


@app.command("demo")
def demo(
    days: int = typer.Option(3, help="Days of simulated history (the DAG runs once per day)."),
    events_per_day: int = typer.Option(20_000, help="Mean valid events per simulated day."),
    bad_rate: float = typer.Option(0.01, help="Share of malformed messages injected."),
    late_rate: float = typer.Option(0.02, help="Share of sessions delivered late."),
    live_rate: int = typer.Option(500, help="Events/s of the live burst after the history."),
    live_seconds: int = typer.Option(10, help="Duration of the live burst."),
    dag: bool = typer.Option(True, "--dag/--no-dag",
                             help="Run the Airflow DAG per day (else a plain `dbt build`)."),
) -> None:
    """The whole pipeline on the embedded stack: simulate, ingest, DAG per day, docs, summary."""
    run_demo(settings(), DemoPlan(days=days, events_per_day=events_per_day, bad_rate=bad_rate,
                                  late_rate=late_rate, live_rate=live_rate,
                                  live_seconds=live_seconds, run_dag=dag))


@app.command("env")
def env(
    show_secrets: bool = typer.Option(
        False, "--show-secrets",
        help="Also print the passwords (for `eval \"$(ecom env --show-secrets)\"`)."),
) -> None:
    """Print `export` lines for the current settings (passwords only with --show-secrets).

    `eval "$(ecom env --show-secrets)"` before running dbt or psql from a terminal: eval
    keeps the passwords off the screen."""
    current = settings()
    for key, value in sorted(current.as_env(secrets=show_secrets).items()):
        print(f"export {key}={_shell_quote(value)}")
    if not show_secrets:
        print(f"# not shown: {', '.join(current.secret_names())} (ecom env --show-secrets)")


@ingest_app.command("class-archive")
def class_archive_command(
    force: bool = typer.Option(False, "--force", help="Record it again."),
) -> None:
    """Record the JVM class archive Spark sessions start from (make setup runs this).

    One small run of the pipeline on a private embedded stack, ~30 s, once per JDK and Spark.
    Later sessions start ~1.6 s faster and their first micro-batch ~1 s sooner."""
    from ecom_app.class_archive import build  # imports Spark's driver side

    build(settings(), force=force, log=lambda line: console.print(
        line, soft_wrap=True, highlight=False, markup=False))


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def main() -> None:
    """Console-script entry: run the app, turning UserError into one readable line."""
    try:
        code = app(standalone_mode=False)  # a command's `typer.Exit(n)` comes back as n
    except UserError as exc:
        if _state["verbose"]:
            raise
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # usage errors (typer vendors its own click: match by shape, not by class)
        code = getattr(exc, "exit_code", None)
        if callable(getattr(exc, "show", None)) and isinstance(code, int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
