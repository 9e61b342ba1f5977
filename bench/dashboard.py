"""Dashboard pages must draw from data in at most a second, close to bare PostgreSQL.

One run, on a private embedded PostgreSQL (temp dir, free port, removed afterwards):
  1. simulate DAYS days of shop traffic (default 30 x 150,000 events/day, 1% bad events,
     2% late sessions) and land them as the stream would (`ecom_app.seed.land_stream`:
     ingestion's sink writes raw events, dead letters and the ledger, and the stream's
     upsert the 5-minute windows), then stamp each row's arrival (`ingested_at`) with
     its Kafka time, as if streamed over those days (the sink stamps the landing time);
  2. add the ops history a month of running leaves (`bench/ops_history.py`: a ledger row
     per second of streaming, a DAG run and three quality gates a day);
  3. build the warehouse (`dbt run --full-refresh`) and VACUUM ANALYZE it;
  4. per page, its widest view (business: every day and category; realtime: 24 h;
     operations: 90 days; quality: every day): the page's own loading code
     (`dashboards.queries.<page>`, reader role, warm connection pool, numerics to
     floats, DataFrames), RUNS times -> median "data time"; then every statement it ran,
     run directly (bare psycopg2: execute + fetchall) -> median "direct SQL time", and
     once with EXPLAIN (ANALYZE) for the server's own time.
Targets: data time <= 1 s per page; data time <= 2x the direct SQL time. Prints each
page's figures and its slowest statements; writes them as JSON (--json).

    .venv/bin/python bench/dashboard.py [--days 30] [--events-per-day 150000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ops_history import load_day  # bench/ops_history.py, beside this script
from private_pg import private_settings, start_migrated, step  # bench/private_pg.py

from dashboards.queries import business, operations, quality, realtime
from dashboards.warehouse import Executed, Warehouse
from ecom.config import Settings
from ecom.db import connect
from ecom.stack import postgres
from ecom_app.seed import land_stream, read_jsonl, run_dbt

REPO = Path(__file__).resolve().parent.parent

TARGET_S = 1.0
TARGET_RATIO = 2.0


def _business(wh: Warehouse) -> object:
    bounds = business.bounds(wh)
    return business.load(wh, bounds.first_date, bounds.last_date, bounds.categories)


def _quality(wh: Warehouse) -> object:
    row = wh.frame(quality.BOUNDS).iloc[0]
    return quality.load(wh, row["first_date"], row["last_date"], 90)


#: page -> its widest view, as the page loads it
PAGES: dict[str, Callable[[Warehouse], object]] = {
    "business": _business,
    "realtime": lambda wh: realtime.load(wh, 24),
    "operations": lambda wh: operations.load(wh, 90),
    "quality": _quality,
}


def _simulate(settings: Settings, work: Path, days: int, per_day: int, seed: int) -> Path:
    events = work / "events.jsonl"
    end_date = datetime.now(UTC).date() - timedelta(days=1)
    subprocess.run(
        [sys.executable, "-m", "ecom_app.cli", "simulate", "backfill", "--days", str(days),
         "--events-per-day", str(per_day), "--seed", str(seed), "--end-date",
         end_date.isoformat(), "--bad-rate", "0.01", "--late-rate", "0.02", "--output",
         str(events), "--manifest", str(work / "manifest.json"), "--no-progress"],
        cwd=REPO, env=settings.subprocess_env(), check=True, stdout=subprocess.DEVNULL)
    return events


def _admin(settings: Settings, *statements: str) -> None:
    conn = connect(settings, "admin", autocommit=True)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def _median_s(func: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _direct(conn: Any, executed: Executed, runs: int) -> tuple[float, float]:
    """(median wall time of a bare execute + fetchall, server time from EXPLAIN ANALYZE)."""
    def once() -> None:
        with conn.cursor() as cur:
            cur.execute(executed.query.sql, executed.params)
            cur.fetchall()

    wall = _median_s(once, runs)
    with conn.cursor() as cur:
        cur.execute("explain (analyze, timing off, format json) " + executed.query.sql,
                    executed.params)
        plan = cur.fetchone()[0][0]
    return wall, (plan["Planning Time"] + plan["Execution Time"]) / 1000


def measure(settings: Settings, runs: int) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    direct_conn = connect(settings, "reader", autocommit=True)
    try:
        for page, load in PAGES.items():
            wh = Warehouse(settings)
            load(wh)  # warm: pool, plans, caches
            data_s = _median_s(lambda wh=wh, load=load: load(wh), runs)
            traced = Warehouse(settings, trace=[])
            load(traced)
            statements = []
            for executed in traced.trace or []:
                wall, server = _direct(direct_conn, executed, runs)
                statements.append({"query": executed.query.name, "rows": executed.rows,
                                   "direct_s": round(wall, 4), "server_s": round(server, 4)})
            traced.close()
            wh.close()
            direct_s = sum(s["direct_s"] for s in statements)
            figures[page] = {
                "data_s": round(data_s, 4), "direct_s": round(direct_s, 4),
                "ratio": round(data_s / direct_s, 2) if direct_s else None,
                "statements": statements,
            }
            slowest = sorted(statements, key=lambda s: -s["direct_s"])[:3]
            print(f"  {page:<11} data {data_s * 1000:7.1f} ms, direct SQL "
                  f"{direct_s * 1000:7.1f} ms ({len(statements)} statements), ratio "
                  f"{figures[page]['ratio']}; slowest: " + ", ".join(
                      f"{s['query']} {s['direct_s'] * 1000:.1f} ms "
                      f"(server {s['server_s'] * 1000:.1f})" for s in slowest), flush=True)
    finally:
        direct_conn.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="days of history (default 30)")
    parser.add_argument("--events-per-day", type=int, default=150_000,
                        help="mean valid events per day (default 150000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per page (median)")
    parser.add_argument("--seed", type=int, default=1515)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the private cluster's data dir (printed) for inspection")
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; workload: "
          f"{args.days} days x {args.events_per_day:,} events/day")
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    settings = private_settings(work / "stack")
    result: dict[str, Any] = {"days": args.days, "events_per_day": args.events_per_day,
                              "target_s": TARGET_S, "target_ratio": TARGET_RATIO}
    try:
        start_migrated(settings)

        started = step("simulating")
        events = _simulate(settings, work, args.days, args.events_per_day, args.seed)
        print(f"  {time.perf_counter() - started:.1f} s")
        started = step("landing through ingestion's sink (events, dead letters, ledger, "
                        "windows)")
        landed = land_stream(settings, read_jsonl(events), batch_records=100_000)
        seconds = time.perf_counter() - started
        print(f"  {landed.valid:,} events, {landed.rejected:,} dead letters, "
              f"{landed.windows:,} window rows in {seconds:.1f} s")
        result.update(events=landed.valid, dead_letters=landed.rejected)
        started = step("arrival times as if streamed over the days (the sink stamps now())")
        _admin(settings,
               "update raw.raw_events set ingested_at = kafka_timestamp "
               "where kafka_timestamp is not null",
               "update raw.rejected_events set received_at = kafka_timestamp "
               "where kafka_timestamp is not null and kafka_timestamp < now()",
               "vacuum analyze raw.raw_events, raw.rejected_events")
        print(f"  {time.perf_counter() - started:.1f} s")

        started = step("ops history: a ledger row per second, a DAG run and gates a day")
        first = datetime.now(UTC).date() - timedelta(days=args.days)
        conn = connect(settings, "admin")
        try:
            ledger = sum(load_day(conn, first + timedelta(days=n), n, args.events_per_day)
                         for n in range(args.days))
        finally:
            conn.close()
        print(f"  {ledger:,} ledger rows in {time.perf_counter() - started:.1f} s")
        result["ledger_rows"] = ledger

        started = step("dbt run --full-refresh")
        run_dbt(settings, "run", "--full-refresh")
        _admin(settings, "vacuum analyze")
        print(f"  {time.perf_counter() - started:.1f} s")

        print(f"- each page's widest view, median of {args.runs} runs", flush=True)
        result["pages"] = measure(settings, args.runs)
    finally:
        if args.keep:
            print(f"kept: {work} (stop with: pg_ctl -D {postgres.cluster_dir(settings)} stop)")
        else:
            postgres.destroy(settings)
            subprocess.run(["rm", "-rf", str(work)], check=False)

    pages = result["pages"]
    ok = all(p["data_s"] <= TARGET_S and (p["ratio"] or 0) <= TARGET_RATIO
             for p in pages.values())
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")
    for page, p in pages.items():
        print(f"{page}: data {p['data_s']:.3f} s (target <= {TARGET_S:g}), {p['ratio']}x the "
              f"direct SQL {p['direct_s']:.3f} s (target <= {TARGET_RATIO:g}x)")
    print("every page meets both targets" if ok else "a page MISSES a target")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
