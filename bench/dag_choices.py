"""The choices behind the daily DAG's speed, each measured in one run (README, "What a DAG
run costs, backfills and retries"; `bench/dag_run.py` measures the DAG as it is).

One private embedded stack (PostgreSQL + tansu in a temp dir, removed afterwards) with
HISTORY_DAYS days of EVENTS events landed by the stream and one warm-up DAG run, then:

- the dbt groups, one DAG run per variant, each on a new day of EVENTS events simulated and
  landed by the stream first (so every run builds the same amount of new data). The DAG
  file is rendered with the variant's arguments of `ecom_pipeline.dbt_groups.dbt_group`
  in the run's own process (what `ecom pipeline run` runs, `ecom_app.local_airflow.dag_test`):
    watcher            ExecutionMode.WATCHER, the build as a dbt subprocess (the DAG's choice)
    watcher-inprocess  the same build in-process (InvocationMode.DBT_RUNNER)
    local              ExecutionMode.LOCAL + TestBehavior.AFTER_EACH: a dbt command per model
                       and per model's tests, in-process (the DAG before issue #16)
    local-build        ExecutionMode.LOCAL + TestBehavior.BUILD: a `dbt build` per model
    threads-N          the watcher with ECOM_DBT_THREADS=N (the DAG's default: 4)
  Figures: the DAG run's wall time as Airflow records it, and the two transform groups'
  (first task start to last task end, from ops.pipeline_execution_logs).
- dbt's partial parse: the marts' `dbt build` (nothing new: what a build costs beyond the
  work) with and without `--no-partial-parse`, alternating, PARSE_ROUNDS each.
- extract: `ingestion.backlog.topic_backlog` (the check the DAG's extract makes) against the
  Spark session start and stop it saves when nothing is missing (and the replay that would
  read the whole topic only to skip it).

    .venv/bin/python bench/dag_choices.py [--events-per-day 20000] [--history-days 2]
        [--variants watcher,local,...] [--parse-rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from dag_run import DBT, PROJECT_DIR, REPO, private_stack, run_seconds, simulate, stop, stream

from ecom.config import Settings
from ecom.db import connect

#: variant -> (dbt_group's keyword arguments by name, ECOM_DBT_THREADS)
VARIANTS: dict[str, tuple[dict[str, str], int | None]] = {
    "watcher": ({}, None),
    "watcher-inprocess": ({"invocation_mode": "DBT_RUNNER"}, None),
    "local": ({"execution_mode": "LOCAL", "invocation_mode": "DBT_RUNNER"}, None),
    "local-build": ({"execution_mode": "LOCAL", "invocation_mode": "DBT_RUNNER",
                     "test_behavior": "BUILD"}, None),
    "threads-1": ({}, 1),
    "threads-2": ({}, 2),
    "threads-8": ({}, 8),
}
DEFAULT_VARIANTS = "watcher,local,local-build,watcher-inprocess,threads-1,threads-2,threads-8"


# ---- one DAG run with a variant (the child process) --------------------------------------------

def run_variant_here(variant: str, day: date) -> int:
    """(In the child.) Render the DAG with the variant's dbt groups, run it for `day`."""
    from ecom_pipeline import dbt_groups  # Airflow, then Cosmos (the other order: a cycle)

    enums = {"execution_mode": dbt_groups.ExecutionMode,
             "invocation_mode": dbt_groups.InvocationMode,
             "test_behavior": dbt_groups.TestBehavior}
    kwargs = {k: enums[k][v] for k, v in VARIANTS[variant][0].items()}
    dbt_groups.dbt_group = functools.partial(dbt_groups.dbt_group, **kwargs)
    from ecom_app.local_airflow.dag_test import run_days

    return run_days([day])


def dag_run_variant(settings: Settings, variant: str, day: date) -> dict[str, Any]:
    from ecom_app.local_airflow.airflow_home import airflow_env, home_dir, prepare
    from ecom_app.local_airflow.manifest import ensure_manifest

    ensure_manifest(settings)
    prepare(settings)  # Airflow's home and metadata DB, as `ecom pipeline run` does
    threads = VARIANTS[variant][1]
    env = airflow_env(settings.replace(pipeline_deadline_minutes=0,
                                       **({"dbt_threads": threads} if threads else {})))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--variant", variant, "--run-day",
                           day.isoformat()], cwd=home_dir(settings), env=env, text=True,
                          capture_output=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"the {variant} run of {day} failed (exit {proc.returncode}):\n"
                 f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    with connect(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute("""select split_part(task_id, '.', 1),
                              extract(epoch from max(ended_at) - min(started_at)), count(*)
                         from ops.pipeline_execution_logs
                        where logical_date = %s and status = 'success'
                          and task_id like 'transform_%%'
                        group by 1""", (day,))
        groups = {g: {"s": round(float(s), 2), "tasks": n} for g, s, n in cur.fetchall()}
    return {"variant": variant, "day": day.isoformat(), "wall_s": round(wall, 2),
            "run_s": round(run_seconds(settings, day), 2), "groups": groups,
            "transform_s": round(sum(g["s"] for g in groups.values()), 2)}


# ---- dbt's partial parse, extract's check ------------------------------------------------------

def dbt_build_marts(settings: Settings, partial: bool) -> float:
    args = [str(DBT), "build", "--select", "tag:marts", "--project-dir", str(PROJECT_DIR),
            "--profiles-dir", str(PROJECT_DIR), "--target-path",
            str(settings.data_dir / "bench-dbt-target"), "--quiet"]
    if not partial:
        args.append("--no-partial-parse")
    started = time.perf_counter()
    subprocess.run(args, cwd=REPO, env=settings.subprocess_env(), check=True,
                   capture_output=True)
    return time.perf_counter() - started


def extract_check_here() -> dict[str, Any]:
    """(In the child.) The backlog check, then the Spark session start it saves (the replay
    that would follow reads the whole topic only to skip it: more still)."""
    from ecom.config import load_settings
    from ingestion.backlog import topic_backlog

    settings = load_settings()
    started = time.perf_counter()
    backlog = topic_backlog(settings)
    check_s = time.perf_counter() - started
    from ingestion.spark import build_session

    started = time.perf_counter()
    build_session(settings, app_name="ecom-bench-extract").stop()
    return {"check_s": round(check_s, 3), "nothing_to_ingest": backlog.nothing_to_ingest,
            "offsets": backlog.offsets, "spark_start_s": round(time.perf_counter() - started, 2)}


def extract_check(settings: Settings) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--extract-check"], cwd=REPO,
                          env=settings.subprocess_env(), text=True, capture_output=True,
                          check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"the extract check failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# ---- the run -----------------------------------------------------------------------------------

def measure(per_day: int, history_days: int, variants: list[str],
            parse_rounds: int) -> dict[str, Any]:
    end = datetime.now(UTC).date() - timedelta(days=1)
    first = end - timedelta(days=len(variants) + history_days)
    with tempfile.TemporaryDirectory(prefix="bench-dag-choices-") as tmp:
        settings = private_stack(Path(tmp))
        try:
            t0 = time.perf_counter()
            simulate(settings, history_days, per_day, first, seed=per_day)
            stream(settings)
            dag_run_variant(settings, "watcher", first)  # warm-up, not counted
            print(f"history and warm-up run in {time.perf_counter() - t0:.0f} s", flush=True)
            runs = []
            day = first
            for i, variant in enumerate(variants):
                day += timedelta(days=1)
                simulate(settings, 1, per_day, day, seed=per_day + 1 + i)
                stream(settings)
                run = dag_run_variant(settings, variant, day)
                runs.append(run)
                groups = ", ".join(f"{g} {v['s']:.1f} s ({v['tasks']} task rows)"
                                   for g, v in sorted(run["groups"].items()))
                print(f"  {variant:<18} {day}: DAG run {run['run_s']:.1f} s, transforms "
                      f"{run['transform_s']:.1f} s ({groups}); load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
            parse: dict[str, list[float]] = {"on": [], "off": []}
            for _ in range(parse_rounds):
                for mode in ("on", "off"):
                    parse[mode].append(round(dbt_build_marts(settings, mode == "on"), 2))
            print(f"  marts dbt build, partial parse on {parse['on']} s, off {parse['off']} s",
                  flush=True)
            extract = extract_check(settings)
            print(f"  extract: backlog check {extract['check_s']:.2f} s "
                  f"({extract['offsets']:,} offsets, nothing to ingest: "
                  f"{extract['nothing_to_ingest']}); the Spark start it saves "
                  f"{extract['spark_start_s']:.1f} s", flush=True)
        finally:
            stop(settings)
    return {"events_per_day": per_day, "runs": runs, "partial_parse_s": parse,
            "extract": extract}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events-per-day", type=int, default=20_000)
    parser.add_argument("--history-days", type=int, default=2)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--parse-rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # the DAG run's child
    parser.add_argument("--run-day", help=argparse.SUPPRESS)
    parser.add_argument("--extract-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        code = run_variant_here(args.variant, date.fromisoformat(args.run_day))
        sys.stdout.flush()
        os._exit(code)
    if args.extract_check:
        print(json.dumps(extract_check_here()))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (other work "
          "on the machine lowers every figure)", flush=True)
    figures = measure(args.events_per_day, args.history_days, variants, args.parse_rounds)
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
