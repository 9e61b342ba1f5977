"""Disaster recovery at scale: RPO and RTO of the embedded warehouse with pgBackRest.

One run, on a private embedded PostgreSQL (temp dir, free port, removed afterwards):
  1. generate EVENTS raw events inside PostgreSQL (`bench/raw_day.py`, one INSERT ...
     SELECT generate_series per day of PER_DAY events), WAL archiving still off;
  2. restart with WAL archiving on (archive_timeout ECOM_BACKUP_WAL_TIMEOUT_SECONDS) and
     take a full backup                                               -> backup time, size;
  3. land day B; measure the RPO's worst case: a commit made right after a WAL segment
     switch waits longest (until archive_timeout forces the next switch) -> RPO;
  4. note T, land day C, wait until C's WAL is archived;
  5. kill -9 PostgreSQL and delete its data directory; `restore(to T)`  -> RTO, from the
     restore's start to the first query answered;
  6. check: every event of the history and B is back, none of C.
Prints the figures with the machine's load average and writes them as JSON (--json).

    .venv/bin/python bench/dr.py [--events 10000000] [--per-day 1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from private_pg import private_settings, start_migrated, step  # bench/private_pg.py
from raw_day import load_day  # bench/raw_day.py, beside this script

from ecom.config import Settings
from ecom.db import connect
from ecom.stack import backup, postgres

TARGET_RPO_S = 60.0
TARGET_RTO_S = 300.0
SMALL_DAY = 20_000  # events of B and of C


def _count(settings: Settings, day: date | None = None) -> int:
    conn = connect(settings, "admin")
    try:
        with conn, conn.cursor() as cur:
            if day is None:
                cur.execute("select count(*) from raw.raw_events")
            else:
                cur.execute("select count(*) from raw.raw_events where event_timestamp >= %s "
                            "and event_timestamp < %s", (day, day + timedelta(days=1)))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _load(settings: Settings, day: date, rows: int) -> None:
    conn = connect(settings, "admin")
    try:
        load_day(conn, day, rows, reject_ratio=0.0)
    finally:
        conn.close()


def _current_segment(settings: Settings) -> str:
    conn = connect(settings, "admin", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_walfile_name(pg_current_wal_lsn())")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def worst_case_rpo(settings: Settings) -> float:
    """A commit right after a segment switch, on an otherwise idle server: its WAL waits
    for archive_timeout to force the next switch, then for the push."""
    conn = connect(settings, "admin", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("create table if not exists ops.dr_probe (at timestamptz)")
            cur.execute("select pg_switch_wal()")
            cur.execute("insert into ops.dr_probe values (clock_timestamp())")
            # after the commit: the segment holding its commit record
            cur.execute("select pg_walfile_name(pg_current_wal_insert_lsn())")
            segment = str(cur.fetchone()[0])
    finally:
        conn.close()
    return backup.wait_archived(settings, segment, timeout_s=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="raw events of history")
    parser.add_argument("--per-day", type=int, default=1_000_000, help="events per day")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"workload: {args.events:,} raw events of history")
    work = Path(tempfile.mkdtemp(prefix="bench-dr-"))
    quiet = private_settings(work / "stack")
    settings = quiet.replace(backup_enabled=True)
    first = datetime.now(UTC).date() - timedelta(days=args.events // args.per_day + 3)
    figures: dict[str, object] = {"events": args.events,
                                  "wal_timeout_s": settings.backup_wal_timeout_seconds}
    try:
        start_migrated(quiet)

        started = step(f"generating {args.events:,} events in PostgreSQL")
        day, left = first, args.events
        while left > 0:
            _load(quiet, day, min(left, args.per_day))
            left -= args.per_day
            day += timedelta(days=1)
        figures["generate_s"] = round(time.perf_counter() - started, 1)
        print(f"  {figures['generate_s']} s")

        started = step("restart with WAL archiving on, full backup")
        postgres.stop(quiet)
        postgres.start(settings)
        backup.ensure_stanza(settings)
        taken = backup.take_backup(settings, "full")
        figures.update(backup_s=round(time.perf_counter() - started, 1),
                       database_bytes=taken.database_bytes, repo_bytes=taken.repo_bytes)
        print(f"  {figures['backup_s']} s: database {taken.database_bytes / 1e9:.2f} GB, "
              f"{taken.repo_bytes / 1e9:.2f} GB in the repository")

        day_b, day_c = day, day + timedelta(days=1)
        step(f"landing day B ({SMALL_DAY:,} events), then the RPO's worst case")
        _load(settings, day_b, SMALL_DAY)
        rpo = worst_case_rpo(settings)
        figures["rpo_s"] = round(rpo, 1)
        print(f"  a commit right after a segment switch reached the archive after {rpo:.1f} s")

        time.sleep(1.1)
        target = datetime.now(UTC)
        time.sleep(1.1)
        step(f"landing day C ({SMALL_DAY:,} events) after T, waiting for its WAL")
        _load(settings, day_c, SMALL_DAY)
        backup.wait_archived(settings, _current_segment(settings), timeout_s=600)
        expected = _count(settings) - SMALL_DAY

        step("kill -9 PostgreSQL, delete its data directory, restore to T")
        postgres.kill(settings)
        shutil.rmtree(postgres.cluster_dir(settings))
        result = backup.restore(settings, target, log=lambda line: print(f"  {line}"))
        figures["rto_s"] = round(result.seconds_to_first_query, 1)
        print(f"  first query answered {result.seconds_to_first_query:.1f} s after the "
              "restore began")
        restored, c_rows = _count(settings), _count(settings, day_c)
        figures.update(restored_events=restored, c_events=c_rows)
        if restored != expected or c_rows:
            raise SystemExit(f"restore to T holds {restored:,} events ({expected:,} expected) "
                             f"and {c_rows:,} of day C (0 expected)")
    finally:
        postgres.destroy(settings)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nload average {os.getloadavg()[0]:.1f} at end")
    print(f"RPO (worst case measured, archive_timeout {figures['wal_timeout_s']} s): "
          f"{figures['rpo_s']} s (target <= {TARGET_RPO_S:.0f} s)")
    print(f"RTO for {args.events:,} raw events ({figures['database_bytes'] / 1e9:.2f} GB): "  # type: ignore[operator]
          f"{figures['rto_s']} s (target <= {TARGET_RTO_S:.0f} s); full backup "
          f"{figures['backup_s']} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = float(figures["rpo_s"]) <= TARGET_RPO_S and float(figures["rto_s"]) <= TARGET_RTO_S  # type: ignore[arg-type]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
