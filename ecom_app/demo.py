"""`ecom demo` (what `make demo` runs): the whole pipeline on the embedded stack, then a summary.

Like `ecom_app.cli`, this is a composition root: it drives every stage through the same `ecom`
commands a user would type (each in a subprocess, so their progress bars show), then reads
the warehouse to print what happened. Re-running it is safe: every run simulates a new batch
of events (new seed), ingestion is exactly-once and the DAG runs are idempotent per day.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2
from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ecom.errors import UserError
from ecom.stack.manager import up
from ecom_app import dashboard
from simulator.manifest import load_manifest

console = Console()


@dataclass
class DemoPlan:
    days: int = 3
    events_per_day: int = 20_000
    bad_rate: float = 0.01
    late_rate: float = 0.02
    live_rate: int = 500
    live_seconds: int = 10
    run_dag: bool = True
    end_date: date = field(default_factory=lambda: datetime.now(UTC).date() - timedelta(days=1))

    @property
    def dates(self) -> list[date]:
        return [self.end_date - timedelta(days=n) for n in range(self.days - 1, -1, -1)]


@dataclass
class StepResult:
    name: str
    seconds: float
    ok: bool


def _ecom(settings: Settings, *args: str) -> list[str]:
    return [sys.executable, "-m", "ecom_app.cli", *args]


def _step(settings: Settings, name: str, cmd: list[str], results: list[StepResult],
          *, allowed_to_fail: bool = False) -> bool:
    console.print(Rule(f"[bold]{name}"))
    shown = ["ecom", *cmd[3:]] if cmd[:3] == _ecom(settings) else cmd
    console.print(f"$ {' '.join(shown)}",
                  style="dim")
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=settings.subprocess_env(), check=False)
    ok = proc.returncode == 0
    results.append(StepResult(name, time.monotonic() - started, ok))
    if not ok and not allowed_to_fail:
        raise UserError(
            f"demo step '{name}' failed (exit {proc.returncode}); see its output above."
        )
    return ok


def run_demo(settings: Settings, plan: DemoPlan) -> None:
    results: list[StepResult] = []
    console.print(Rule("[bold]embedded stack"))
    started = time.monotonic()
    settings, status = up(settings)
    results.append(StepResult("stack up", time.monotonic() - started, True))
    console.print(f"  postgresql: {status.postgres}")
    console.print(f"  kafka: {status.kafka}")
    for name, partitions in status.topics.items():
        console.print(f"  topic {name}: {partitions} partition(s)")
    for note in status.notes:
        console.print(f"  - {note}")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    manifests = settings.manifest_dir
    backfill_manifest = manifests / f"demo-{stamp}-backfill.json"
    live_manifest = manifests / f"demo-{stamp}-live.json"
    _step(settings, f"simulate {plan.days} days of history", _ecom(
        settings, "simulate", "backfill", "--days", str(plan.days),
        "--events-per-day", str(plan.events_per_day), "--end-date", plan.end_date.isoformat(),
        "--bad-rate", str(plan.bad_rate), "--late-rate", str(plan.late_rate),
        "--manifest", str(backfill_manifest)), results)
    _step(settings, f"simulate a live burst ({plan.live_rate}/s for {plan.live_seconds}s)", _ecom(
        settings, "simulate", "live", "--rate", str(plan.live_rate),
        "--duration", str(plan.live_seconds), "--bad-rate", str(plan.bad_rate),
        "--manifest", str(live_manifest)), results)
    ingest = ["ingest", "stream", "--available-now"]
    if broker_restarted_after_ingestion(settings, status.notes):
        console.print(
            "[bold yellow]The embedded broker was started fresh by this run but the warehouse "
            "already holds ingested events: the broker's memory storage lost its topics "
            "(events not ingested before it stopped are gone). The demo resets ingestion's "
            "checkpoint, which opens a new topic epoch (see README, Failure modes).")
        ingest.append("--reset-checkpoint")
    _step(settings, "stream-ingest until caught up (Spark Structured Streaming)",
          _ecom(settings, *ingest), results)

    if plan.run_dag:
        _step(settings, "Airflow DAG per simulated day (extract, GE gates, Cosmos dbt groups)",
              _ecom(settings, "pipeline", "run", "--date", plan.dates[0].isoformat(),
                    "--to", plan.dates[-1].isoformat()), results, allowed_to_fail=True)
    else:
        _step(settings, "dbt build", ["dbt", "build", "--project-dir", "dbt_project",
              "--profiles-dir", "dbt_project"], results)

    _step(settings, "dbt docs (lineage site)", [
        str(Path(sys.executable).parent / "dbt"), "docs", "generate", "--project-dir",
        "dbt_project", "--profiles-dir", "dbt_project", "--quiet"], results,
        allowed_to_fail=True)
    _step(settings, "Great Expectations Data Docs", _ecom(settings, "quality", "docs"), results,
          allowed_to_fail=True)

    dashboard_url = _start_dashboards(settings, results)
    print_summary(settings, plan, [backfill_manifest, live_manifest], results, dashboard_url)


def _start_dashboards(settings: Settings, results: list[StepResult]) -> str | None:
    """Serve the dashboards over what the demo built (left running; `ecom dashboard down`)."""
    console.print(Rule("[bold]dashboards"))
    started = time.monotonic()
    try:
        state = dashboard.up(settings)
    except UserError as exc:
        console.print(f"[red]the dashboards did not start: {exc}")
        results.append(StepResult("dashboards", time.monotonic() - started, False))
        return None
    dashboard.print_urls(state)
    results.append(StepResult("dashboards", time.monotonic() - started, True))
    return state.url


def broker_restarted_after_ingestion(settings: Settings, notes: list[str]) -> bool:
    """True when `stack up` just started an (empty, memory-only) broker while the ingest
    ledger shows earlier batches: the stream's checkpoint points past the new log end."""
    if settings.kafka_mode != "embedded" or "broker started" not in notes:
        return False
    with connect(settings, "admin") as conn, conn.cursor() as cur:
        cur.execute("select exists (select 1 from ops.ingest_batches)")
        return bool(cur.fetchone()[0])


def print_summary(settings: Settings, plan: DemoPlan, manifest_paths: list[Path],
                  results: list[StepResult], dashboard_url: str | None = None) -> None:
    console.print(Rule("[bold green]summary"))
    manifests = [load_manifest(p) for p in manifest_paths if p.exists()]
    sent_ids: list[str] = []
    for manifest in manifests:
        sent_ids.extend(manifest.event_ids())
    with connect(settings, "admin") as conn, conn.cursor() as cur:
        cur.execute("create temp table demo_ids (event_id uuid) on commit drop")
        cur.executemany("insert into demo_ids values (%s)", [(i,) for i in sent_ids])
        cur.execute("select count(*) from demo_ids d join raw.raw_events r using (event_id)")
        landed_now = cur.fetchone()[0]
        cur.execute("select count(*) from raw.raw_events")
        landed_total = cur.fetchone()[0]
        cur.execute("select reason_code, count(*) from raw.rejected_events group by 1 order by 1")
        rejected_total = dict(cur.fetchall())

    events = Table(title="events: sent by this run vs landed in the warehouse")
    events.add_column("what")
    events.add_column("count", justify="right")
    events.add_row("valid events acknowledged by Kafka (this run)",
                   f"{sum(m.valid_events for m in manifests):,}")
    events.add_row("  of which landed in raw.raw_events", f"{landed_now:,}")
    events.add_row("  lost", f"{len(sent_ids) - landed_now:,}")
    events.add_row("bad events injected (this run)", f"{sum(m.bad_events for m in manifests):,}")
    events.add_row("late events (this run)", f"{sum(m.late_events for m in manifests):,}")
    events.add_row("raw.raw_events (all runs)", f"{landed_total:,}")
    for reason, count in rejected_total.items():
        events.add_row(f"raw.rejected_events: {reason} (all runs)", f"{count:,}")
    console.print(events)

    _print_kpis(settings, plan)
    _print_gates(settings, plan)

    steps = Table(title="steps")
    steps.add_column("step")
    steps.add_column("result")
    steps.add_column("seconds", justify="right")
    for r in results:
        steps.add_row(r.name, "[green]ok" if r.ok else "[red]failed", f"{r.seconds:.1f}")
    console.print(steps)

    dbt_docs = settings.dbt_project_dir / "target" / "index.html"
    console.print("\n[bold]Where to look next[/]")
    if dashboard_url:
        console.print(f"  Dashboards: {dashboard_url}  (business, realtime, operations, data "
                      "quality; `.venv/bin/ecom dashboard down` stops them)")
    console.print(f"  dbt docs (lineage): {dbt_docs}  -> serve with "
                  "`.venv/bin/dbt docs serve --project-dir dbt_project --profiles-dir dbt_project`"
                  " after `eval \"$(.venv/bin/ecom env --show-secrets)\"`")
    console.print("  GE Data Docs: `.venv/bin/ecom quality docs` prints the site's index.html")
    console.print("  Airflow UI: `.venv/bin/ecom airflow up` (prints URL and login)")
    spark_logs = sorted(settings.log_dir.glob("spark-*.log"))
    if spark_logs:
        console.print("  Spark's own log (its WARN lines are kept out of this output): "
                      + ", ".join(str(p) for p in spark_logs))
    console.print("  Warehouse: `eval \"$(.venv/bin/ecom env --show-secrets)\"` then psql as "
                  "reader (TLS, the stack's CA): PGPASSWORD=\"$ECOM_PG_READER_PASSWORD\" psql "
                  "\"host=$ECOM_PG_HOST port=$ECOM_PG_PORT dbname=$ECOM_PG_DATABASE "
                  "user=$ECOM_PG_READER_USER sslmode=$ECOM_PG_SSLMODE "
                  "sslrootcert=$ECOM_PG_SSLROOTCERT\"", highlight=False, markup=False)
    if not all(r.ok for r in results):
        raise UserError("the demo finished with failed steps (see the table above).")


#: the dbt analysis the KPI table runs (compiled by `dbt docs generate` or `dbt compile`)
KPI_ANALYSIS = "headline_kpis"


def compiled_analysis(settings: Settings, name: str) -> str:
    """The compiled SQL of a dbt analysis: `target/compiled/.../analyses/<name>.sql`,
    compiled now if no earlier command did."""
    target = settings.dbt_project_dir / "target" / "compiled"
    found = sorted(target.glob(f"*/analyses/{name}.sql"))
    if not found:
        subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), "compile", "--select", name, "--quiet",
             "--project-dir", str(settings.dbt_project_dir),
             "--profiles-dir", str(settings.dbt_project_dir)],
            env=settings.subprocess_env(), capture_output=True, check=False, timeout=300)
        found = sorted(target.glob(f"*/analyses/{name}.sql"))
    if not found:
        raise UserError(f"dbt could not compile the analysis {name}: run `dbt compile "
                        f"--select {name}` (after `eval \"$(ecom env --show-secrets)\"`).")
    return found[0].read_text()


def _print_kpis(settings: Settings, plan: DemoPlan) -> None:
    try:
        kpis_sql = compiled_analysis(settings, KPI_ANALYSIS)
        with connect(settings, "reader") as conn, conn.cursor() as cur:
            cur.execute(f"select * from (\n{kpis_sql}\n) as kpis where date between %s and %s "
                        "order by date", (plan.dates[0], plan.dates[-1]))
            rows = cur.fetchall()
    except (UserError, psycopg2.Error) as exc:  # the marts may not exist if the DAG failed
        console.print(f"[yellow]KPIs unavailable: {str(exc).splitlines()[0]}")
        return
    kpis = Table(title="headline KPIs per day (analytics.daily_aggregations + user_sessions)")
    for col in ("date", "events", "sessions", "orders", "revenue", "conversion", "avg order"):
        kpis.add_column(col, justify="right")
    for row in rows:
        day, ev, sess, orders, revenue, conv, aov = row
        kpis.add_row(str(day), f"{ev:,}", f"{sess or 0:,}", f"{orders or 0:,}",
                     f"{revenue:,.2f}", f"{(conv or 0):.2%}", f"{aov or 0:,.2f}")
    console.print(kpis)


def _print_gates(settings: Settings, plan: DemoPlan) -> None:
    sql = """
        select distinct on (logical_date, layer) logical_date, layer, run_id,
               bool_and(success) over (partition by run_id) as passed,
               count(*) over (partition by run_id) as expectations,
               count(*) filter (where not success) over (partition by run_id) as failed
        from ops.data_quality_logs
        where logical_date between %s and %s
        order by logical_date, layer, run_started_at desc"""
    with connect(settings, "admin") as conn, conn.cursor() as cur:
        cur.execute(sql, (plan.dates[0], plan.dates[-1]))
        rows = cur.fetchall()
    gates = Table(title="quality gates (latest run per day and layer, ops.data_quality_logs)")
    for col in ("date", "layer", "result", "expectations", "failed"):
        gates.add_column(col)
    for day, layer, _run, passed, total, failed in rows:
        gates.add_row(str(day), layer, "[green]pass" if passed else "[red]FAIL", str(total),
                      str(failed))
    console.print(gates)
