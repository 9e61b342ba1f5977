"""Disaster drill: the warehouse's PostgreSQL is killed (-9) and its data directory deleted;
a point-in-time restore from pgBackRest brings back exactly what was committed before the
chosen moment, and the marts rebuild to what they were.

Through the real path: the simulator produces to Kafka, `ecom ingest stream
--available-now` lands each batch (Spark, exactly once), dbt builds the marts.

    land A -> backup -> land B -> build the marts (snapshot) -> note T -> land C
    -> kill -9 PostgreSQL, delete its data directory -> `ecom warehouse restore --to-time T`
    -> raw holds A and B exactly (by event id, against the simulator's manifests), no C
    -> `dbt build --full-refresh` gives the marts of the snapshot
    -> `ecom ingest batch` replays Kafka: C lands, once (Kafka kept what came after T)

Printed: the RPO achieved (how long C's newest commit waited for its WAL to reach the
archive; archive_timeout bounds it) and the RTO (restore start to first query answered).
"""

from __future__ import annotations

import re
import shutil
import time
from datetime import UTC, date, datetime

import pytest

from ecom.config import Settings
from ecom.stack import backup, postgres
from ecom_app.seed import query, run_dbt, table_snapshot
from simulator.manifest import Manifest, load_manifest
from tests.conftest import private_stack, run_ecom
from tests.reconciliation import Expected, id_figures, show

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.spark]

DAY = date(2026, 2, 14)
MARTS = ("processed_events", "user_sessions", "daily_aggregations", "product_analytics",
         "customer_rfm_segments", "product_pairs")


def _land(s: Settings, name: str, seed: int) -> Manifest:
    """Simulate one batch into Kafka and let the stream land it."""
    path = s.manifest_dir / f"drill-{name}.json"
    run_ecom(s, "simulate", "backfill", "--days", "1", "--events-per-day", "2500",
             "--end-date", DAY.isoformat(), "--seed", str(seed), "--bad-rate", "0.02",
             "--manifest", str(path), "--no-progress")
    run_ecom(s, "ingest", "stream", "--available-now")
    return load_manifest(path)


def test_disaster_drill_restores_to_the_moment_and_the_marts_rebuild(
        tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    with private_stack(tmp_path_factory, "drill", backup_enabled=True) as s:
        a = _land(s, "a", 101)
        run_ecom(s, "warehouse", "backup")
        b = _land(s, "b", 202)
        run_dbt(s, "build")
        marts = {m: table_snapshot(s, f"analytics.{m}") for m in MARTS}
        time.sleep(1.1)
        target = datetime.now(UTC)
        time.sleep(1.1)
        c = _land(s, "c", 303)

        # the RPO achieved: how long the newest commit (C's last batch) waits for the
        # archive; a crash before that loses at most this much
        [(segment,)] = query(s, "select pg_walfile_name(pg_current_wal_lsn())")
        rpo = backup.wait_archived(s, segment, timeout_s=120)

        assert postgres.kill(s)
        shutil.rmtree(postgres.cluster_dir(s))
        assert not postgres.is_running(s)

        restored = run_ecom(s, "warehouse", "restore", "--to-time", target.isoformat())
        rto = float(re.search(r"first query answered ([\d.]+) s",
                              " ".join(restored.stdout.split())).group(1))  # type: ignore[union-attr]

        ab = id_figures(s, Expected.of([a, b]))
        assert ab.exact, ab
        landed = {r[0] for r in query(s, "select event_id::text from raw.raw_events")}
        assert not landed & set(c.event_ids())
        run_dbt(s, "build", "--full-refresh")
        for mart in MARTS:
            assert table_snapshot(s, f"analytics.{mart}") == marts[mart], mart

        # what came after T is still in Kafka: a replay lands it, once
        run_ecom(s, "ingest", "batch", "--from", "earliest", "--to", "latest")
        abc = id_figures(s, Expected.of([a, b, c]))
        assert abc.exact, abc

        show(capsys,
             f"drill: A+B restored exactly ({ab.checked:,} events, lost {ab.lost}, duplicated "
             f"{ab.duplicated}; {ab.rejected} dead letters), C absent "
             f"({len(c.event_ids()):,} events), {len(MARTS)} marts rebuilt identical",
             f"drill: RPO achieved {rpo:.1f} s (C's newest WAL reached the archive; "
             f"archive_timeout {s.backup_wal_timeout_seconds} s), RTO {rto:.1f} s "
             "(restore start to first query answered)",
             f"drill: after the restore, a Kafka replay landed C: {abc.checked:,} events, "
             f"lost {abc.lost}, duplicated {abc.duplicated}")
