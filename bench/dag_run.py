"""What orchestration costs: the daily DAG run against the same work run directly.

One run, on private embedded stacks (PostgreSQL + tansu in a temp dir, removed afterwards).
For each day size (default 20,000 and 150,000 valid events a day):
  1. history: HISTORY_DAYS days simulated into Kafka, landed by `ecom ingest stream
     --available-now`, then one warm-up run each way (Airflow's metadata DB, dbt's partial
     parse, the first build of every mart): not timed;
  2. pairs of new days, each simulated and landed by the stream as in production (not
     timed), then:
       - direct: the same work from one Python process, no Airflow: extract's check of the
         topic against raw (and a Spark replay if anything were missing), the raw gate,
         `dbt build` of the staging models (the same dbt command the DAG's build task
         runs), the staging gate, `dbt build` of the marts, the marts gate;
       - DAG: `ecom pipeline run --date D` as a user types it (Airflow's process, the DAG
         parse, every task, the results table): wall time end to end.
     ratio = the DAG run's wall time (start to end, as Airflow records it and the UI
     shows) / the direct wall time (target <= 1.5; the ratio of the whole command, which
     adds Airflow's start and the DAG parse, is printed too), and the command's wall time
     for the day, end to end (target <= 30 s at 20,000 events);
Then a backfill: BACKFILL_DAYS days simulated into Kafka and NOT ingested (the first run's
extract lands them all with Spark), then `ecom pipeline run --date D1 --to Dn`: wall time.

    .venv/bin/python bench/dag_run.py [--sizes 20000,150000] [--history-days 7]
        [--pairs 1] [--backfill-days 30] [--backfill-events-per-day 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ecom.config import Settings
from ecom.db import connect
from ecom.ports import free_port
from ecom.stack import broker, postgres
from ecom.stack.manager import up

REPO = Path(__file__).resolve().parent.parent
ECOM = [sys.executable, "-m", "ecom_app.cli"]
PROJECT_DIR = REPO / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")
STAGING_BUILD = ("build", "--select", "tag:staging", "tag:intermediate",
                 "--indirect-selection", "cautious")
MARTS_BUILD = ("build", "--select", "tag:marts")

TARGET_RATIO = 1.5
TARGET_DAY_S = 30.0  # at 20,000 events a day
TARGET_DAY_EVENTS = 20_000


# ---- the stack ------------------------------------------------------------------------------

def private_stack(data_dir: Path) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOM_")}
    env.update(ECOM_DATA_DIR=str(data_dir), ECOM_PG_PORT=str(free_port()),
               ECOM_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
               ECOM_AIRFLOW_PORT=str(free_port()))
    settings, _ = up(Settings.from_env(env))
    return settings


def stop(settings: Settings) -> None:
    broker.stop(settings)
    postgres.destroy(settings)


def ecom(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*ECOM, *args], cwd=REPO, env=settings.subprocess_env(), text=True,
                          capture_output=True, check=False)
    if check and proc.returncode != 0:
        sys.exit(f"ecom {' '.join(args)} failed (exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def simulate(settings: Settings, days: int, per_day: int, end: date, seed: int) -> None:
    ecom(settings, "simulate", "backfill", "--days", str(days), "--events-per-day",
         str(per_day), "--end-date", end.isoformat(), "--seed", str(seed),
         "--bad-rate", "0.01", "--late-rate", "0.02", "--no-progress")


def stream(settings: Settings) -> None:
    ecom(settings, "ingest", "stream", "--available-now")


def day_events(settings: Settings, day: date) -> int:
    with connect(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute("select count(*) from raw.raw_events where event_timestamp >= %s "
                    "and event_timestamp < %s::date + 1", (day, day))
        return int(cur.fetchone()[0])


# ---- the two ways of doing a day's work --------------------------------------------------------

def direct(settings: Settings, day: date) -> dict[str, float]:
    """The day's work without Airflow, in a fresh Python process (as a script would)."""
    proc = subprocess.run([sys.executable, __file__, "--direct-day", day.isoformat()],
                          cwd=REPO, env=settings.subprocess_env(), text=True,
                          capture_output=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"the direct run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                 f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def direct_in_this_process(day: date) -> dict[str, float]:
    """(In the child process.) Extract, gates and the two builds, timed step by step."""
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        steps[name] = round(now - since, 2)
        return now

    from ecom.config import load_settings

    settings = load_settings()
    t = time.perf_counter()
    from expectations.gate import run_gate
    from ingestion.backlog import topic_backlog

    if not topic_backlog(settings).nothing_to_ingest:
        from ingestion.batch import replay
        from ingestion.spark import build_session

        spark = build_session(settings, app_name="ecom-bench-direct")
        try:
            replay(settings, spark, log=lambda _line: None)
        finally:
            spark.stop()
    t = step("extract", t)
    for layer, build in (("raw", STAGING_BUILD), ("staging", MARTS_BUILD), ("marts", None)):
        result = run_gate(settings, layer, day, publish=False)
        if not result.success:
            raise SystemExit(result.headline())
        t = step(f"gate_{layer}", t)
        if build:
            dbt(settings, *build)
            t = step(f"dbt {build[2]}", t)
    steps["total"] = round(time.perf_counter() - started, 2)
    return steps


def dbt(settings: Settings, *args: str) -> None:
    """The dbt command the DAG's build task runs (a `dbt` process), on its own target dir."""
    target = settings.data_dir / "bench-dbt-target"
    proc = subprocess.run([str(DBT), *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir",
                           str(PROJECT_DIR), "--target-path", str(target), "--quiet"],
                          cwd=REPO, env=settings.subprocess_env(), text=True,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed:\n{proc.stdout[-3000:]}")


def run_seconds(settings: Settings, day: date) -> float:
    """The day's latest DAG run as Airflow records it (start to end: what the UI shows)."""
    db = settings.data_dir / "airflow" / "airflow.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        start, end = conn.execute(
            "select start_date, end_date from dag_run where date(logical_date) = ? "
            "order by id desc limit 1", (day.isoformat(),)).fetchone()
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def dag_run(settings: Settings, *days: date) -> dict[str, Any]:
    """`ecom pipeline run` for these days (oldest first), as a user types it: wall time
    end to end, and the last day's DAG run as Airflow timed it."""
    started = time.perf_counter()
    args = ["pipeline", "run", "--date", days[0].isoformat()]
    if len(days) > 1:
        args += ["--to", days[-1].isoformat()]
    proc = ecom(settings, *args, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"ecom {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    with connect(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute("""select task_id, duration_s from ops.pipeline_execution_logs
                        where logical_date = %s and status = 'success'""", (days[-1],))
        tasks = dict(cur.fetchall())
    groups: dict[str, float] = {}
    for task_id, seconds in tasks.items():
        key = task_id if "dbt_producer_watcher" in task_id else task_id.split(".")[0]
        groups[key] = round(groups.get(key, 0.0) + (seconds or 0.0), 2)
    return {"wall_s": round(wall, 2), "run_s": round(run_seconds(settings, days[-1]), 2),
            "tasks_s": groups}


# ---- the measurements --------------------------------------------------------------------------

def measure_size(per_day: int, history_days: int, pairs: int, end: date) -> dict[str, Any]:
    print(f"\n== {per_day:,} events a day: {history_days} days of history, {pairs} pair(s) "
          f"of new days (load average {os.getloadavg()[0]:.1f})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-dag-run-") as tmp:
        settings = private_stack(Path(tmp))
        try:
            first = end - timedelta(days=2 * pairs + history_days)
            t0 = time.perf_counter()
            simulate(settings, history_days, per_day, first, seed=per_day)
            stream(settings)
            print(f"  history landed in {time.perf_counter() - t0:.0f} s", flush=True)
            t0 = time.perf_counter()
            dbt_parse = ["parse", "--project-dir", str(PROJECT_DIR), "--profiles-dir",
                         str(PROJECT_DIR), "--target-path",
                         str(settings.data_dir / "bench-dbt-target"), "--quiet"]
            subprocess.run([str(DBT), *dbt_parse],
                           cwd=REPO, env=settings.subprocess_env(), check=True)
            dag_run(settings, first)  # warm-up: Airflow's DB, the first build of every mart
            direct(settings, first)   # and dbt's partial parse for the direct runs
            print(f"  warm-up runs in {time.perf_counter() - t0:.0f} s", flush=True)
            results: list[dict[str, Any]] = []
            day = first
            for pair in range(pairs):
                pair_result: dict[str, Any] = {}
                for way in ("direct", "dag"):
                    day += timedelta(days=1)
                    simulate(settings, 1, per_day, day, seed=per_day + 100 * pair + len(way))
                    stream(settings)
                    events = day_events(settings, day)
                    if way == "direct":
                        steps = direct(settings, day)
                        pair_result["direct"] = {"day": day.isoformat(), "events": events,
                                                 "wall_s": steps["total"], "steps_s": steps}
                    else:
                        pair_result["dag"] = {"day": day.isoformat(), "events": events,
                                              **dag_run(settings, day)}
                    figure = pair_result[way]
                    print(f"  {way:>6} {day} ({events:,} events): {figure['wall_s']:.1f} s  "
                          f"{figure.get('steps_s') or figure.get('tasks_s')}", flush=True)
                dag, direct_s = pair_result["dag"], pair_result["direct"]["wall_s"]
                pair_result["ratio"] = round(dag["run_s"] / direct_s, 3)
                pair_result["ratio_end_to_end"] = round(dag["wall_s"] / direct_s, 3)
                print(f"  ratio DAG run / direct: {pair_result['ratio']:.2f} (the DAG run "
                      f"{dag['run_s']:.1f} s; the whole command {dag['wall_s']:.1f} s: "
                      f"{pair_result['ratio_end_to_end']:.2f})", flush=True)
                results.append(pair_result)
        finally:
            stop(settings)
    dag_s = [r["dag"]["wall_s"] for r in results]
    run_s = [r["dag"]["run_s"] for r in results]
    direct_s = [r["direct"]["wall_s"] for r in results]
    return {"events_per_day": per_day, "history_days": history_days, "pairs": results,
            "dag_s": round(sum(dag_s) / len(dag_s), 2),
            "run_s": round(sum(run_s) / len(run_s), 2),
            "direct_s": round(sum(direct_s) / len(direct_s), 2),
            "ratio": round(sum(run_s) / sum(direct_s), 3),
            "ratio_end_to_end": round(sum(dag_s) / sum(direct_s), 3),
            "day_events": round(sum(r["dag"]["events"] for r in results) / len(results))}


def measure_backfill(days: int, per_day: int, end: date) -> dict[str, Any]:
    print(f"\n== backfill: {days} days x {per_day:,} events, in Kafka only (load average "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-dag-backfill-") as tmp:
        settings = private_stack(Path(tmp))
        try:
            simulate(settings, days, per_day, end, seed=7 * per_day)
            first = end - timedelta(days=days - 1)
            run = dag_run(settings, first, end)
        finally:
            stop(settings)
    print(f"  {days} days in {run['wall_s']:.0f} s ({run['wall_s'] / days:.1f} s a day)",
          flush=True)
    return {"days": days, "events_per_day": per_day, "wall_s": run["wall_s"],
            "per_day_s": round(run["wall_s"] / days, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,150000",
                        help="valid events a day, comma-separated (default 20000,150000)")
    parser.add_argument("--history-days", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=1,
                        help="direct/DAG pairs of new days per size (default 1)")
    parser.add_argument("--backfill-days", type=int, default=30, help="0: no backfill")
    parser.add_argument("--backfill-events-per-day", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--direct-day", help=argparse.SUPPRESS)  # the direct run's child
    args = parser.parse_args()
    if args.direct_day:
        print(json.dumps(direct_in_this_process(date.fromisoformat(args.direct_day))))
        return 0

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (other work "
          "on the machine lowers every figure)")
    end = datetime.now(UTC).date() - timedelta(days=1)
    figures: dict[str, Any] = {"sizes": {}}
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        figures["sizes"][str(size)] = measure_size(size, args.history_days, args.pairs, end)
    if args.backfill_days:
        figures["backfill"] = measure_backfill(args.backfill_days,
                                               args.backfill_events_per_day, end)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")
    failed = False
    for size, f in figures["sizes"].items():
        ok = f["ratio"] <= TARGET_RATIO
        failed |= not ok
        print(f"{int(size):,} events a day: DAG run {f['run_s']:.1f} s, same work directly "
              f"{f['direct_s']:.1f} s, ratio {f['ratio']:.2f} "
              f"({'meets' if ok else 'MISSES'} the <= {TARGET_RATIO} target); end to end "
              f"(`ecom pipeline run`: Airflow's start, the DAG parse, the results) "
              f"{f['dag_s']:.1f} s, {f['ratio_end_to_end']:.2f}")
        if int(size) == TARGET_DAY_EVENTS:
            ok = f["dag_s"] <= TARGET_DAY_S
            failed |= not ok
            print(f"  a daily run of {TARGET_DAY_EVENTS:,} events: {f['dag_s']:.1f} s "
                  f"({'meets' if ok else 'MISSES'} the <= {TARGET_DAY_S:.0f} s target)")
    if "backfill" in figures:
        b = figures["backfill"]
        print(f"backfill of {b['days']} days x {b['events_per_day']:,} events: "
              f"{b['wall_s']:.0f} s ({b['per_day_s']:.1f} s a day)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
