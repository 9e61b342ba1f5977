"""The raw archive and the retention jobs on the real warehouse (PostgreSQL, dbt, the
broker): raw days out to Parquet and back, the marts unchanged by it, a kill between
writing a part and deleting its rows, days Kafka could still replay, the marts' own
retention.

One private stack (archiving deletes raw days: no other module's data may be there).
Six simulated days are landed under a topic the broker does not hold - out of Kafka's
reach, as month-old days are on a real cluster whose retention deleted them - plus dead
letters, and built by dbt. The tests then run in order on that warehouse, like the
daily jobs would: archive (killed once, re-run), incremental dbt run, restore, full
refresh, archive again, mart retention a year later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ecom.kafka_admin import admin_client, ensure_retention
from ecom_app.seed import event_json, land_events, query, read_jsonl, run_dbt, table_snapshot
from operations.archive import TABLES, archive_url
from tests.conftest import ECOM, private_stack, run_ecom
from tests.reconciliation import show

pytestmark = pytest.mark.integration

TOPIC = "archived.ecommerce-events"  # not on the broker: out of Kafka's reach
END_DATE = date(2025, 3, 10)
DAYS = 6
AS_OF = END_DATE + timedelta(days=30)  # archives the five days before END_DATE
ARCHIVED_DAYS = [END_DATE - timedelta(days=n) for n in range(DAYS - 1, 0, -1)]
REJECTED_PER_DAY = 40
WAREHOUSE = ("analytics.processed_events", "analytics.user_sessions",
             "analytics.daily_aggregations", "analytics.product_analytics",
             "analytics.customer_rfm_segments", "analytics.product_pairs",
             "analytics_intermediate.int_events_sessionized",
             "analytics_intermediate.int_purchase_lines")


@dataclass
class Warehouse:
    settings: Settings
    raw: list[tuple[Any, ...]]
    rejected: list[tuple[Any, ...]]
    marts: dict[str, list[tuple[Any, ...]]]


def _snapshot(s: Settings) -> dict[str, list[tuple[Any, ...]]]:
    return {relation: table_snapshot(s, relation) for relation in WAREHOUSE}


def _land_dead_letters(s: Settings) -> None:
    for day in [*ARCHIVED_DAYS, END_DATE]:
        query(s, "insert into raw.rejected_events (kafka_topic, kafka_partition, kafka_offset, "
                 "kafka_timestamp, raw_value, raw_size_bytes, reason_code, reason_message, "
                 "received_at) select %s, 1, %s + i, %s, '{\"price\": -' || i || '}', 16, "
                 "'negative_price', 'price is negative', %s + i * interval '1 minute' "
                 "from generate_series(1, %s) as g (i)",
              (TOPIC, day.toordinal() * 1000, datetime.combine(day, datetime.min.time(), UTC),
               datetime.combine(day, datetime.min.time(), UTC), REJECTED_PER_DAY))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with private_stack(tmp_path_factory, "ops-archive") as s:
        work = tmp_path_factory.mktemp("archive-data")
        events = work / "events.jsonl"
        run_ecom(s, "simulate", "backfill", "--days", str(DAYS), "--events-per-day", "700",
                 "--seed", "20250310", "--end-date", END_DATE.isoformat(), "--late-rate",
                 "0.05", "--users", "500", "--products", "120", "--output", str(events),
                 "--manifest", str(work / "manifest.json"), "--no-progress")
        lines = list(read_jsonl(events))
        assert land_events(s, lines, topic=TOPIC) == len(lines)
        _land_dead_letters(s)
        run_dbt(s, "build")
        yield Warehouse(s, table_snapshot(s, "raw.raw_events"),
                        table_snapshot(s, "raw.rejected_events"), _snapshot(s))


def _raw_days(s: Settings, table: str = "raw_events") -> dict[date, int]:
    t = TABLES[table]
    return dict(query(s, f"select ({t.time_column} at time zone 'UTC')::date, count(*) "
                         f"from {t.relation} group by 1"))


def _parts(s: Settings) -> list[tuple[str, date, str, str, int]]:
    return query(s, "select table_name, day, part, state, rows from ops.archive_parts "
                    "order by 1, 2, 3")


def _files(s: Settings) -> list[Path]:
    return sorted(Path(archive_url(s)).rglob("*.parquet"))


def _wait(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_kill_between_write_and_delete_loses_and_doubles_nothing(
        warehouse: Warehouse, capsys: pytest.CaptureFixture[str]) -> None:
    """The archiver is killed (-9, whole process group) after it wrote and verified the
    first day's part and while its delete waits; the re-run completes every day, once."""
    s = warehouse.settings
    before = _raw_days(s)
    # a lock that lets every read through but holds the delete: the kill lands exactly
    # between the part's write and the transaction removing its rows
    blocker = connect(s, "admin")
    blocker.cursor().execute("lock table raw.raw_events in share mode")
    proc = subprocess.Popen([*ECOM, "maintenance", "run", "--date", AS_OF.isoformat()],
                            cwd=REPO_ROOT, env=s.subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(lambda: query(s, "select count(*) from pg_stat_activity where wait_event_type "
                               "= 'Lock' and query like 'delete from raw.raw_events%%'")
              == [(1,)], "the archiver's delete to wait on the lock")
        writing = query(s, "select day, part from ops.archive_parts where state = 'writing'")
        assert [d for d, _ in writing] == [ARCHIVED_DAYS[0]]
        [(_, part)] = writing
        assert [f.name for f in _files(s)] == [part]  # written and read back, not yet final
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        blocker.rollback()
        blocker.close()
    _wait(lambda: query(s, "select count(*) from pg_stat_activity "
                           "where query like 'delete from raw.raw_events%%'") == [(0,)],
          "the orphaned delete to roll back")
    assert _raw_days(s) == before
    assert query(s, "select state from ops.archive_parts") == [("writing",)]

    proc = run_ecom(s, "maintenance", "run", "--date", AS_OF.isoformat())
    assert "interrupted run" in proc.stdout
    assert sorted(_raw_days(s)) == [END_DATE]
    assert sorted(_raw_days(s, "rejected_events")) == [END_DATE]
    parts = _parts(s)
    assert [(t, d, st) for t, d, _, st, _ in parts] == [
        (t, d, "archived") for t in ("raw_events", "rejected_events") for d in ARCHIVED_DAYS]
    assert sorted(f.name for f in _files(s)) == sorted(p for _, _, p, _, _ in parts)
    for table, day, part, _, rows in parts:
        path = Path(archive_url(s)) / table / f"{TABLES[table].partition}={day}" / part
        data = pq.read_table(path)
        expected = before[day] if table == "raw_events" else REJECTED_PER_DAY
        assert data.num_rows == rows == expected
        assert len(set(data.column(TABLES[table].key).to_pylist())) == rows
    archived = query(s, "select action, target, status, rows, bytes from "
                        "ops.maintenance_actions where action = 'archive' and status = 'done'")
    assert len(archived) == 2 * len(ARCHIVED_DAYS)
    assert all(r[3] > 0 and r[4] > 0 for r in archived)
    assert query(s, "select day from ops.pruned_days where layer = 'raw' order by 1") == [
        (d,) for d in ARCHIVED_DAYS]
    show(capsys, f"archive: killed after writing {part} of {ARCHIVED_DAYS[0]}; re-run "
                 f"archived {len(parts)} day-parts, {sum(r for *_, r in parts):,} rows, "
                 "each once")


def test_an_incremental_run_keeps_every_mart_row_of_the_archived_days(
        warehouse: Warehouse) -> None:
    """The lookback window covers archived days (their raw count is now 0): the run
    re-checks them and changes nothing; dbt's reconciliation tests excuse those days."""
    s = warehouse.settings
    proc = run_dbt(s, "build")
    assert "int_events_sessionized: rebuilding" in proc.stdout
    assert _snapshot(s) == warehouse.marts


def test_a_restored_day_loads_once_and_a_full_refresh_rebuilds_the_same_marts(
        warehouse: Warehouse) -> None:
    s = warehouse.settings
    for day in ARCHIVED_DAYS:
        out = run_ecom(s, "archive", "restore", "--date", day.isoformat()).stdout
        assert "already in raw" in out and " 0 loaded" not in out
    assert table_snapshot(s, "raw.raw_events") == warehouse.raw
    assert table_snapshot(s, "raw.rejected_events") == warehouse.rejected
    again = run_ecom(s, "archive", "restore", "--date", ARCHIVED_DAYS[0].isoformat()).stdout
    assert again.count(": 0 loaded") == 2
    assert table_snapshot(s, "raw.raw_events") == warehouse.raw
    missing = run_ecom(s, "archive", "restore", "--date", "2020-01-01", check=False)
    assert missing.returncode == 2
    assert "holds nothing for 2020-01-01" in " ".join(missing.stderr.split())

    run_dbt(s, "build", "--full-refresh")
    assert _snapshot(s) == warehouse.marts


def test_restored_days_are_archived_again_without_a_second_copy(warehouse: Warehouse) -> None:
    s = warehouse.settings
    parts = _parts(s)
    run_ecom(s, "maintenance", "run", "--date", AS_OF.isoformat())
    assert sorted(_raw_days(s)) == [END_DATE]
    assert _parts(s) == parts
    assert len(_files(s)) == len(parts)
    details = query(s, "select detail from ops.maintenance_actions where action = 'archive' "
                       "and status = 'done' order by action_id desc limit %s",
                    (2 * len(ARCHIVED_DAYS),))
    assert all("archived before" in d for (d,) in details)


def test_days_the_broker_can_still_replay_stay_in_raw(warehouse: Warehouse) -> None:
    """Rows of the events topic's current epoch at offsets the broker still serves: the
    extract step's replay would land them again, so their day waits."""
    s = warehouse.settings
    day = END_DATE - timedelta(days=200)
    stamp = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
    landed = land_events(s, [event_json(
        event_id=f"0190a0b0-0000-7000-8000-00000000000{i}", user_id="user_9", session_id="s9",
        event_type="page_view", event_timestamp=stamp, page_url="https://shop.example.com/",
        user_agent="Mozilla/5.0", ip_address="198.51.100.9") for i in range(3)])
    assert landed == 3
    try:
        out = run_ecom(s, "maintenance", "run", "--date", AS_OF.isoformat(), "--dry-run").stdout
        [(status, detail)] = query(
            s, "select status, detail from ops.maintenance_actions where target = %s "
               "order by action_id desc limit 1", (f"raw.raw_events {day}",))
        assert status == "held"
        assert "3 row(s) could be read from Kafka again" in detail
        assert "held" in out
    finally:
        query(s, "delete from raw.raw_events where kafka_topic = %s returning 1",
              (s.topic_events,))


def test_raw_days_wait_while_the_sessionised_events_are_unlogged(warehouse: Warehouse) -> None:
    """A warehouse built when the intermediate tables were unlogged: a crash would empty
    them, and with raw archived their history would be gone."""
    s = warehouse.settings
    table = "analytics_intermediate.int_events_sessionized"
    query(s, f"alter table {table} set unlogged")
    try:
        later = (END_DATE + timedelta(days=31)).isoformat()
        run_ecom(s, "maintenance", "run", "--date", later, "--dry-run")
        [(status, detail)] = query(
            s, "select status, detail from ops.maintenance_actions where target = %s "
               "order by action_id desc limit 1", (f"raw.raw_events {END_DATE}",))
        assert status == "held" and "is unlogged" in detail and "--full-refresh" in detail
    finally:
        query(s, f"alter table {table} set logged")


def test_topic_retention_is_checked_and_set_back(warehouse: Warehouse) -> None:
    s = warehouse.settings
    client = admin_client(s)
    try:
        from kafka.admin import ConfigResource, ConfigResourceType

        client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.topic_processed,
                                             configs={"retention.ms": "1000"})],
                             raise_on_unknown=False)
    finally:
        client.close()
    assert not all(c.holds for c in ensure_retention(s, apply=False))
    out = run_ecom(s, "stack", "up").stdout
    assert "processed-events 30 d (set now)" in " ".join(out.split())
    checks = ensure_retention(s, apply=False)
    assert all(c.holds for c in checks)
    assert {c.topic: c.now_ms for c in checks} == s.topic_retention_ms
    # the same check against the broker as an external Kafka
    external = run_ecom(s.replace(kafka_mode="external"), "maintenance", "run", "--dry-run",
                        "--date", AS_OF.isoformat()).stdout
    assert "kafka_retention" in external


def _old_ops_rows(s: Settings, when: datetime) -> None:
    query(s, "insert into ops.pipeline_execution_logs (dag_id, run_id, task_id, status, "
             "logged_at) values ('d', 'r', 't', 'success', %s) returning 1", (when,))
    query(s, "insert into ops.data_quality_logs (run_id, layer, suite_name, expectation_type, "
             "success, run_started_at, logged_at) values ('r', 'raw', 's', 'e', true, %s, %s) "
             "returning 1", (when, when))
    query(s, "insert into ops.ingest_batches (query_name, batch_id, committed_at) values "
             "('q', 1, %s), ('q', 2, %s) returning 1", (when, when))
    query(s, "insert into raw.realtime_metrics (window_start, window_end, event_type, category, "
             "events, unique_users, unique_sessions) values (%s, %s, 'page_view', '(none)', 1, "
             "1, 1) returning 1", (when, when + timedelta(minutes=5)))


def test_retention_prunes_marts_and_logs_and_dbt_keeps_them_pruned(
        warehouse: Warehouse, capsys: pytest.CaptureFixture[str]) -> None:
    """A year on: mart days past 365 days go (sessions begun before the cutoff from the
    event-grained models), ops logs past 90 days, windows past 7; the next dbt run brings
    none back and its reconciliation tests hold from the retention edge on."""
    s = warehouse.settings
    later = END_DATE + timedelta(days=363)  # the mart cutoff falls on END_DATE - 2
    mart_cutoff = later - timedelta(days=s.mart_retention_days)
    midnight = datetime.combine(mart_cutoff, datetime.min.time(), UTC)
    _old_ops_rows(s, midnight - timedelta(days=10))
    daily = ("select date, category, event_type, total_events, total_revenue from "
             "analytics.daily_aggregations where date >= %s order by 1, 2, 3")
    kept_daily = query(s, daily, (mart_cutoff,))
    run_ecom(s, "maintenance", "run", "--date", later.isoformat())

    assert query(s, "select min(date) from analytics.daily_aggregations") == [(mart_cutoff,)]
    for relation in ("analytics.processed_events", "analytics.user_sessions",
                     "analytics_intermediate.int_events_sessionized"):
        assert query(s, f"select min(session_started_at) >= %s from {relation}",
                     (midnight,)) == [(True,)], relation
    assert query(s, "select count(*) from ops.pipeline_execution_logs") == [(0,)]
    assert query(s, "select count(*) from ops.data_quality_logs") == [(0,)]
    assert query(s, "select batch_id from ops.ingest_batches") == [(2,)]  # the newest stays
    assert query(s, "select count(*) from raw.realtime_metrics") == [(0,)]
    assert sorted(_raw_days(s)) == []  # END_DATE is past the archive's 30 days too
    pruned = [d for (d,) in query(s, "select day from ops.pruned_days where layer = 'marts' "
                                     "order by 1")]
    assert pruned[-1] == mart_cutoff and min(pruned) == END_DATE - timedelta(days=DAYS - 1)

    run_dbt(s, "build")  # every test passes, reconciliation included
    assert query(s, "select min(date) from analytics.daily_aggregations") == [(mart_cutoff,)]
    assert query(s, daily, (mart_cutoff,)) == kept_daily
    actions = query(s, "select target, rows from ops.maintenance_actions where action = "
                       "'prune' and rows > 0 and logical_date = %s order by 1", (later,))
    assert {t for t, _ in actions} >= {"analytics.daily_aggregations",
                                      "analytics.processed_events", "ops.ingest_batches"}
    show(capsys, "retention: " + ", ".join(f"{t} -{n:,}" for t, n in actions))
