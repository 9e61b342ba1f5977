"""`ecom spark up|down|status`: a Spark standalone cluster on this machine (`ingestion.cluster`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecom.config import load_settings
from ingestion import cluster

console = Console()

app = typer.Typer(
    help="A Spark standalone cluster on this machine (master + workers from the installed "
         "pyspark), to run `ecom ingest` the way it runs on a cluster of machines.",
    no_args_is_help=True,
)


def _print(status: cluster.ClusterStatus) -> None:
    table = Table(title=f"spark {status.master_url}", show_header=True)
    table.add_column("component")
    table.add_column("state")
    table.add_row("master", status.master)
    for worker in status.workers:
        name, _, state = worker.partition(" ")
        table.add_row(name, state)
    table.add_row("alive workers", f"{status.alive_workers} ({status.cores_used}/"
                                   f"{status.cores} cores in use)")
    for app_line in status.apps:
        table.add_row("application", app_line)
    table.add_row("master UI", status.ui_url)
    console.print(table)
    for note in status.notes:
        console.print(f"  - {note}")


@app.command("up")
def up(
    workers: Annotated[int | None, typer.Option(
        help="Workers to run (default ECOM_SPARK_WORKERS); each gets ECOM_SPARK_WORKER_CORES "
             "cores and ECOM_SPARK_WORKER_MEMORY.")] = None,
) -> None:
    """Start the master and the workers (idempotent); print the master URL to use."""
    settings = load_settings()
    status = cluster.up(settings, workers=workers)
    _print(status)
    console.print(f"run ingestion there:  export ECOM_SPARK_MASTER={status.master_url}",
                  soft_wrap=True, highlight=False, markup=False)


@app.command("down")
def down() -> None:
    """Stop the workers (and their executors), then the master."""
    stopped = cluster.down(load_settings())
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command("status")
def status() -> None:
    """The master, the workers, their cores and the running applications."""
    _print(cluster.status_of(load_settings()))
