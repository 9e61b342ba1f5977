"""What TLS and the audit trail cost the warehouse's writes, as ratios measured in one run.

On a private embedded stack: a day of simulated events is landed in raw, COPYed out once,
then COPYed into a scratch table (what the ingestion sink does per micro-batch) and written
as single-row INSERTs (statement-heavy work like dbt's and the callbacks'), each over
  - TLS (verify-full) with pgaudit on: the project's default,
  - plain TCP with pgaudit on (pg_hba.conf briefly allows it on loopback),
  - TLS with pgaudit off (pgaudit.log = 'none', reloaded),
round-robin, best of each. The ratios say what each control costs; the absolute figures depend on
the machine and its load.

    .venv/bin/python bench/security.py [--events-per-day 200000] [--inserts 5000] [--rounds 5]
                                       [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from ecom.config import Settings, isolated_settings
from ecom.db import connect
from ecom.ports import free_port
from ecom.stack import broker, postgres
from ecom.stack.manager import up
from ecom_app.seed import land_events, read_jsonl

#: what the controls may cost bulk loading (COPY) at most: within 15% of no TLS, no audit
TARGET_RATIO = 0.85
RAW_COLUMNS = ("event_id", "user_id", "session_id", "event_type", "event_timestamp",
               "product_id", "category", "price", "quantity", "page_url", "user_agent",
               "ip_address", "raw_data", "kafka_topic", "kafka_partition", "kafka_offset")


def _reload_with(settings: Settings, hba: str | None = None, audit: str | None = None) -> None:
    pgdata = postgres.cluster_dir(settings)
    if hba is not None:
        (pgdata / "pg_hba.conf").write_text(hba)
    if audit is not None:
        _alter_system(settings, f"alter system set pgaudit.log = '{audit}'")
    postgres.reload(settings)


def _alter_system(settings: Settings, statement: str) -> None:
    conn = connect(settings, "admin", autocommit=True)  # ALTER SYSTEM: no transaction
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _copy_seconds(settings: Settings, data: bytes) -> float:
    columns = ", ".join(RAW_COLUMNS)
    conn = connect(settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("truncate bench.raw_copy")
        started = time.perf_counter()
        with conn, conn.cursor() as cur:
            cur.copy_expert(f"copy bench.raw_copy ({columns}) from stdin", io.BytesIO(data),
                            size=8 << 20)
        return time.perf_counter() - started
    finally:
        conn.close()


def _insert_seconds(settings: Settings, count: int) -> float:
    conn = connect(settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("truncate bench.small")
        started = time.perf_counter()
        with conn, conn.cursor() as cur:
            for i in range(count):
                cur.execute("insert into bench.small values (%s, %s)", (i, "x"))
        return time.perf_counter() - started
    finally:
        conn.close()


def run(settings: Settings, events_per_day: int, inserts: int, rounds: int,
        log: Callable[[str], None]) -> dict:
    work = settings.data_dir / "bench-security"
    work.mkdir(exist_ok=True)
    events = work / "events.jsonl"
    subprocess.run(
        [sys.executable, "-m", "ecom_app.cli", "simulate", "backfill", "--days", "1",
         "--events-per-day", str(events_per_day), "--end-date", date(2025, 5, 1).isoformat(),
         "--seed", "5151", "--output", str(events), "--manifest", str(work / "m.json"),
         "--no-progress"], env=settings.subprocess_env(), check=True, capture_output=True)
    land_events(settings, read_jsonl(events))
    buf = io.BytesIO()
    with connect(settings) as conn, conn.cursor() as cur:
        cur.copy_expert(f"copy (select {', '.join(RAW_COLUMNS)} from raw.raw_events) to stdout",
                        buf)
        cur.execute("create schema if not exists bench")
        cur.execute("create table if not exists bench.raw_copy (like raw.raw_events "
                    "including defaults)")
        cur.execute("create table if not exists bench.small (id int, note text)")
    data = buf.getvalue()
    rows = data.count(b"\n")
    plain = settings.replace(pg_sslmode="disable")
    hba = (postgres.cluster_dir(settings) / "pg_hba.conf").read_text()
    tls_hba = hba
    plain_hba = "host all all 127.0.0.1/32 scram-sha-256\n" + hba
    configs = {  # name -> (pg_hba.conf, pgaudit.log, the client's settings)
        "tls_audit": (tls_hba, "ddl, role, write", settings),
        "plain_audit": (plain_hba, "ddl, role, write", plain),
        "tls_none": (tls_hba, "none", settings),
        "plain_none": (plain_hba, "none", plain),
    }
    best: dict[str, dict[str, float]] = {n: {"copy_s": 1e9, "insert_s": 1e9} for n in configs}
    log(f"{rows:,} rows ({len(data) / 1e6:.0f} MB) per COPY, {inserts:,} single-row INSERTs; "
        f"{rounds} rounds over the 4 configurations (best of each)")
    try:
        for _ in range(rounds):  # round-robin: a load change hits every configuration
            for name, (conf_hba, audit, client) in configs.items():
                _reload_with(settings, hba=conf_hba, audit=audit)
                best[name]["copy_s"] = min(best[name]["copy_s"], _copy_seconds(client, data))
                best[name]["insert_s"] = min(best[name]["insert_s"],
                                             _insert_seconds(client, inserts))
    finally:
        _reload_with(settings, hba=hba)
        _alter_system(settings, "alter system reset pgaudit.log")
        postgres.reload(settings)
    results = best
    out: dict = {"rows": rows, "inserts": inserts}
    for name, r in results.items():
        out[name] = {"copy_rows_per_s": round(rows / r["copy_s"]),
                     "inserts_per_s": round(inserts / r["insert_s"])}
        log(f"  {name:<12} COPY {out[name]['copy_rows_per_s']:>9,} rows/s   "
            f"INSERT {out[name]['inserts_per_s']:>7,} statements/s")
    base = out["plain_none"]
    for name in ("tls_audit", "plain_audit", "tls_none"):
        out[f"copy_{name}_over_plain_none"] = round(
            out[name]["copy_rows_per_s"] / base["copy_rows_per_s"], 3)
        out[f"insert_{name}_over_plain_none"] = round(
            out[name]["inserts_per_s"] / base["inserts_per_s"], 3)
    log(f"COPY with TLS and audit / with neither: {out['copy_tls_audit_over_plain_none']:.3f} "
        f"(target >= {TARGET_RATIO}); single-row INSERTs: "
        f"{out['insert_tls_audit_over_plain_none']:.3f}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=200_000)
    parser.add_argument("--inserts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecom-bench-security-") as tmp:
        settings, _ = up(isolated_settings(Path(tmp), free_port(), free_port()))
        try:
            figures = run(settings, args.events_per_day, args.inserts, args.rounds, print)
        finally:
            broker.stop(settings)
            postgres.destroy(settings)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
