"""`ecom ingest stream|batch|status`: Spark ingestion from Kafka into PostgreSQL."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecom.config import load_settings

console = Console()

app = typer.Typer(
    help="Spark Structured Streaming from Kafka into PostgreSQL raw tables, exactly once, "
         "with dead letters and 5-minute realtime windows.",
    no_args_is_help=True,
)


def _log(line: str) -> None:
    console.print(line, soft_wrap=True, highlight=False, markup=False)


@app.command()
def stream(
    ctx: typer.Context,
    available_now: Annotated[bool, typer.Option(
        "--available-now", "--until-caught-up",
        help="Drain what the topic holds now (then update the windows) and exit.")] = False,
    reset_checkpoint: Annotated[bool, typer.Option(
        "--reset-checkpoint",
        help="After the broker lost data: forget the stream's position, open a new topic "
             "epoch and re-read the topic from its earliest offset. Re-sent events already "
             "landed become duplicate_event_id dead letters.")] = False,
    max_rows_per_batch: Annotated[int | None, typer.Option(
        help="Cap on rows per micro-batch (default ECOM_MAX_ROWS_PER_BATCH).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on this port, at ECOM_METRICS_HOST (default "
             "ECOM_STREAM_METRICS_PORT; 0 = none).", min=0, max=65535)] = None,
) -> None:
    """Ingest the events topic until stopped (Ctrl-C / SIGTERM stop between batches)."""
    from ingestion.stream import run_stream

    settings = load_settings()
    if metrics_port is not None:
        settings = settings.replace(stream_metrics_port=metrics_port)
    verbose = settings.verbose or bool(ctx.find_root().params.get("verbose"))
    run_stream(settings, available_now=available_now, reset=reset_checkpoint,
               max_rows=max_rows_per_batch, log=_log, traces=verbose)


@app.command()
def batch(
    start: Annotated[str, typer.Option(
        "--from", help="'earliest' or an ISO-8601 time (Kafka record time, UTC if no zone).")
    ] = "earliest",
    end: Annotated[str, typer.Option(
        "--to", help="'latest' or an ISO-8601 time (exclusive).")] = "latest",
    max_rows_per_batch: Annotated[int | None, typer.Option(
        help="Offsets per Spark job (default ECOM_MAX_ROWS_PER_BATCH).")] = None,
) -> None:
    """Replay a range of the events topic through the same exactly-once sink (idempotent)."""
    from ingestion.batch import replay
    from ingestion.spark import build_session

    settings = load_settings()
    spark = build_session(settings, "ecom-ingest-replay")
    try:
        replay(settings, spark, start, end, max_rows=max_rows_per_batch, log=_log)
    finally:
        spark.stop()


@app.command()
def status() -> None:
    """Lag per partition (log end vs the stream's checkpoint) and what has landed."""
    from ingestion.status import ingest_status

    report = ingest_status(load_settings())
    table = Table(title=f"ingest: {report.topic}", show_header=True)
    for column in ("partition", "log end", "committed", "lag"):
        table.add_column(column, justify="right")
    for row in report.partitions:
        table.add_row(str(row.partition), f"{row.log_end:,}",
                      "-" if row.committed is None else f"{row.committed:,}",
                      "-" if row.lag is None else f"{row.lag:,}")
    console.print(table)
    for line in report.notes:
        console.print(f"  {line}", soft_wrap=True)
