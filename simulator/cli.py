"""`ecom simulate backfill|live`: realistic shop traffic into Kafka (or a JSONL file)."""

from __future__ import annotations

import secrets
import signal
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecom.config import load_settings
from ecom.errors import UserError
from ecom.events import BadClass

console = Console()

app = typer.Typer(
    help="Simulate shoppers: sessions as funnels (views, carts, wishlists, checkouts) sent to "
         "the events topic keyed by user_id, with optional bad and late events. Every run "
         "writes a JSON manifest of exactly what was acknowledged.",
    no_args_is_help=True,
)

Seed = Annotated[int | None, typer.Option(
    help="Seed for a byte-identical stream (backfill). Default: random, recorded in the "
         "manifest. Use a new seed for each run into the same topic (same seed = same ids).")]
BadRate = Annotated[float, typer.Option(
    help="Share of all messages that are malformed on purpose (0 to <0.5).")]
BadClasses = Annotated[list[BadClass] | None, typer.Option(
    "--bad-class", metavar="CLASS",
    help="Restrict injected bad input to this class (repeatable). Default: all of "
         + ", ".join(c.value for c in BadClass) + ".")]
LateRate = Annotated[float, typer.Option(
    help="Share of sessions delivered late: hours or days after their event timestamps.")]
Users = Annotated[int, typer.Option("--users", help="Number of distinct users.")]
Products = Annotated[int, typer.Option("--products", help="Number of catalogue products.")]
Returning = Annotated[float, typer.Option(
    help="Share of sessions made by returning users (about 30% of users).")]
Conversion = Annotated[float, typer.Option(
    help="Probability that a visitor leaving with a non-empty cart checks out.")]
Abandonment = Annotated[float, typer.Option(
    help="Probability that a visitor leaves after each page (sets session length).")]
AddToCart = Annotated[float, typer.Option(
    help="Probability of adding the viewed product to the cart on a product page.")]
Output = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write JSONL (one message per line) to this file instead of Kafka.")]
Client = Annotated[str | None, typer.Option(
    help="Kafka client: confluent or kafka-python. Default: ECOM_KAFKA_CLIENT.")]
Topic = Annotated[str | None, typer.Option(help="Topic to produce to. Default: ECOM_TOPIC_EVENTS.")]
ManifestPath = Annotated[Path | None, typer.Option(
    "--manifest", help="Manifest path. Default: <data dir>/manifests/<run id>.json.")]
ShowProgress = Annotated[bool, typer.Option("--progress/--no-progress",
                                            help="Show a progress bar with events/s.")]


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


@app.command()
def backfill(
    days: Annotated[int, typer.Option(help="Number of whole UTC days of history.")] = 7,
    events_per_day: Annotated[int, typer.Option(
        help="Mean valid events per day (scaled by a weekday factor).")] = 20_000,
    end_date: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%d"],
        help="Last simulated day (UTC), inclusive. Default: yesterday. Recorded in the "
             "manifest; pass it with --seed to reproduce a stream byte for byte.")] = None,
    seed: Seed = None,
    bad_rate: BadRate = 0.0,
    bad_class: BadClasses = None,
    late_rate: LateRate = 0.0,
    users: Users = 10_000,
    products: Products = 2_000,
    returning_share: Returning = 0.6,
    conversion: Conversion = 0.30,
    abandonment: Abandonment = 0.22,
    add_to_cart: AddToCart = 0.06,
    output: Output = None,
    client: Client = None,
    topic: Topic = None,
    manifest: ManifestPath = None,
    progress: ShowProgress = True,
) -> None:
    """Emit DAYS of history ending at END-DATE, as fast as the sink takes it."""
    from simulator.run import BackfillPlan

    plan = BackfillPlan(days, events_per_day, end_date.date() if end_date else _yesterday())
    _run("backfill", plan, seed, bad_rate, bad_class, late_rate, users, products,
         returning_share, conversion, abandonment, add_to_cart, output, client, topic, manifest,
         progress)


@app.command()
def live(
    rate: Annotated[float, typer.Option(help="Messages per second.")] = 200.0,
    duration: Annotated[float | None, typer.Option(
        help="Seconds to run. Default: until Ctrl-C (the manifest is still written).")] = None,
    session_seconds: Annotated[float, typer.Option(
        help="Rough wall-clock length of a session: events of concurrent sessions interleave "
             "so that each session completes in about this time.")] = 10.0,
    seed: Seed = None,
    bad_rate: BadRate = 0.0,
    bad_class: BadClasses = None,
    late_rate: LateRate = 0.0,
    users: Users = 10_000,
    products: Products = 2_000,
    returning_share: Returning = 0.6,
    conversion: Conversion = 0.30,
    abandonment: Abandonment = 0.22,
    add_to_cart: AddToCart = 0.06,
    output: Output = None,
    client: Client = None,
    topic: Topic = None,
    manifest: ManifestPath = None,
    progress: ShowProgress = True,
) -> None:
    """Emit RATE events/s stamped with the current time (late sessions: hours/days ago)."""
    from simulator.run import LivePlan

    _run("live", LivePlan(rate, duration, session_seconds), seed, bad_rate, bad_class,
         late_rate, users, products, returning_share, conversion, abandonment, add_to_cart,
         output, client, topic, manifest, progress)


def _run(mode: str, plan: object, seed: int | None, bad_rate: float,
         bad_class: list[BadClass] | None, late_rate: float, users: int, products: int,
         returning_share: float, conversion: float, abandonment: float, add_to_cart: float,
         output: Path | None, client: str | None, topic: str | None, manifest: Path | None,
         progress: bool) -> None:
    from simulator.manifest import Tally
    from simulator.progress import progress_reporter
    from simulator.run import SimulationConfig, run_id_for, simulate
    from simulator.sessions import FunnelParams
    from simulator.sinks import FileSink, Sink, kafka_destination

    settings = load_settings()
    seed = secrets.randbelow(2**31) if seed is None else seed
    cfg = SimulationConfig(
        seed=seed, bad_rate=bad_rate, late_rate=late_rate,
        bad_classes=tuple(bad_class) if bad_class else tuple(BadClass),
        n_users=users, n_products=products, returning_share=returning_share,
        funnel=FunnelParams(abandonment=abandonment, conversion=conversion,
                            add_to_cart=add_to_cart))
    cfg.validate()
    run_id = run_id_for(mode, seed, datetime.now(UTC))
    manifest_path = manifest or settings.manifest_dir / f"{run_id}.json"
    if manifest_path.is_dir():
        raise UserError(f"--manifest {manifest_path} is a directory; give a file path.")
    tally = Tally()
    sink: Sink
    if output is not None:
        sink = FileSink(output, tally)
    else:
        sink = kafka_destination(settings, client, topic, tally)
    target = sink.describe()
    where = target.get("path") or f"{target['topic']} via {target['client']}"
    console.print(f"simulating [bold]{mode}[/] (seed {seed}) -> {where}", soft_wrap=True)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with progress_reporter(console, mode, plan, bad_rate, enabled=progress) as on_progress:
            result = simulate(cfg, plan, sink, tally, manifest_path,  # type: ignore[arg-type]
                              on_progress=on_progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result is not None
    _summary(result)


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    """SIGTERM stops a run like Ctrl-C: stop sending, flush, write the manifest."""
    raise KeyboardInterrupt


def _summary(m: object) -> None:
    from simulator.manifest import Manifest

    assert isinstance(m, Manifest)
    rate = m.messages_acknowledged / m.elapsed_seconds if m.elapsed_seconds else 0.0
    table = Table(title=f"{m.mode} simulation ({m.status})", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("messages acknowledged", f"{m.messages_acknowledged:,}")
    table.add_row("rate", f"{rate:,.0f} messages/s")
    table.add_row("valid events", f"{m.valid_events:,}")
    for event_type, n in m.events_by_type.items():
        table.add_row(f"  {event_type}", f"{n:,}")
    table.add_row("sessions / users", f"{m.distinct_sessions:,} / {m.distinct_users:,}")
    table.add_row("orders / revenue", f"{m.orders:,} / {m.revenue_total}")
    table.add_row("late events", f"{m.late_events:,}")
    table.add_row("bad messages", f"{m.bad_events:,}")
    for cls, n in m.bad_events_by_class.items():
        if n:
            table.add_row(f"  {cls}", f"{n:,}")
    console.print(table)
    console.print(f"run {m.run_id}, manifest: {m.path}", soft_wrap=True)
    if m.status == "interrupted":
        console.print("[yellow]interrupted: the manifest counts what was acknowledged[/]")
