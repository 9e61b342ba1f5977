"""The dbt project against the real PostgreSQL: reconciliation with the simulator's manifest,
late data, incremental == full refresh, the project's own tests, docs and lint.

One warehouse is built per module (dbt runs take ~10-20 s each): simulator history landed
in two arrival batches (the second carries the last day and the late sessions), each
followed by an incremental `dbt build`, exactly as the daily pipeline would.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ecom.config import REPO_ROOT, Settings
from ecom.stack import postgres
from ecom_app.seed import (
    dbt_target_dir,
    event_json,
    land_events,
    query,
    read_jsonl,
    run_dbt,
    run_results,
    table_snapshot,
)
from tests.conftest import run_ecom

pytestmark = pytest.mark.integration

END_DATE = date(2025, 3, 10)
DAYS = 6
#: the unlogged intermediate tables (the ledger rollups of the dashboards included)
INTERMEDIATE = ("int_events_sessionized", "int_ingest_hours", "int_ingest_partition_offsets",
                "int_purchase_lines", "int_user_agents_parsed")
MARTS = ("processed_events", "user_sessions", "daily_sessions", "daily_aggregations",
         "product_analytics", "customer_rfm_segments", "product_pairs")


@dataclass
class Warehouse:
    settings: Settings
    manifest: dict[str, Any]
    first_batch: int
    second_batch: int


def _split_by_arrival(lines: list[bytes], cutoff: datetime) -> tuple[list[bytes], list[bytes]]:
    """Lines arrive in order; the first on-time event of `cutoff`'s day starts batch two."""
    stamp = cutoff.strftime("%Y-%m-%dT%H:%M:%S")
    for i, line in enumerate(lines):
        if json.loads(line)["event_timestamp"] >= stamp:
            return lines[:i], lines[i:]
    raise AssertionError("no event on the last day")


@pytest.fixture(scope="module")
def warehouse(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    work = tmp_path_factory.mktemp("dbt-warehouse")
    events, manifest_path = work / "events.jsonl", work / "manifest.json"
    run_ecom(stack, "simulate", "backfill", "--days", str(DAYS), "--events-per-day", "900",
             "--seed", "20250310", "--end-date", END_DATE.isoformat(), "--late-rate", "0.05",
             "--users", "600", "--products", "150", "--output", str(events),
             "--manifest", str(manifest_path), "--no-progress")
    manifest = json.loads(manifest_path.read_text())
    first, second = _split_by_arrival(
        list(read_jsonl(events)), datetime.combine(END_DATE, datetime.min.time(), UTC))
    assert land_events(stack, first) == len(first)
    run_dbt(stack, "build")
    assert land_events(stack, second) == len(second)
    run_dbt(stack, "build")
    return Warehouse(stack, manifest, len(first), len(second))


def test_incremental_build_passes_every_test(warehouse: Warehouse) -> None:
    results = run_results(warehouse.settings)
    failed = [r["unique_id"] for r in results if r["status"] not in ("success", "pass")
              and not r["unique_id"].startswith("exposure.")]
    assert not failed
    ids = [r["unique_id"] for r in results]
    assert sum(i.startswith("unit_test.") for i in ids) >= 3
    assert sum(i.startswith("model.") for i in ids) == 31
    assert any("assert_every_valid_event_processed_once" in i for i in ids)
    assert warehouse.first_batch > 0 and warehouse.second_batch > 0


def test_marts_reconcile_exactly_with_the_simulator_manifest(warehouse: Warehouse) -> None:
    s, m = warehouse.settings, warehouse.manifest
    revenue: dict[str, dict[str, str]] = defaultdict(dict)
    for day, category, total in query(
        s, "select date::text, category, total_revenue from analytics.daily_aggregations "
           "where event_type = 'purchase'"):
        revenue[day][category] = total
    expected_revenue = {day: {c: Decimal(v) for c, v in cats.items() if Decimal(v)}
                        for day, cats in m["revenue_by_day_category"].items()}
    assert revenue == expected_revenue

    by_type = dict(query(s, "select event_type, sum(total_events)::bigint "
                            "from analytics.daily_aggregations group by 1"))
    assert by_type == m["events_by_type"]
    by_day_type: dict[str, dict[str, int]] = defaultdict(dict)
    for day, event_type, n in query(
        s, "select event_date::text, event_type, count(*) from analytics.processed_events "
           "group by 1, 2"):
        by_day_type[day][event_type] = n
    assert by_day_type == {d: {t: n for t, n in ts.items() if n} for d, ts in
                           m["events_by_day_type"].items()}

    orders_by_day = dict(query(
        s, "select event_date::text, count(distinct session_id) from analytics.processed_events "
           "where event_type = 'purchase' group by 1"))
    assert orders_by_day == {d: n for d, n in m["orders_by_day"].items() if n}
    [(users, sessions, orders, total)] = query(
        s, "select count(distinct user_id), count(*), count(*) filter (where is_converted), "
           "sum(revenue) from analytics.user_sessions")
    assert (users, sessions, orders) == (
        m["distinct_users"], m["distinct_sessions"], m["orders"])
    assert total == Decimal(m["revenue_total"])


def test_reader_reads_marts_but_not_staging(warehouse: Warehouse) -> None:
    s = warehouse.settings
    [(n,)] = query(s, "select count(*) from analytics.daily_aggregations", role="reader")
    assert n > 0
    with pytest.raises(Exception, match="permission denied"):
        query(s, "select 1 from analytics_staging.stg_ecommerce__events limit 1", role="reader")


def _late_events(s: Settings) -> tuple[list[bytes], Decimal, str, str]:
    """A purchase landing two days late in an existing session, plus a visit predating a
    user's first session (their later sessions become returning) and a very late view."""
    late_day = END_DATE - timedelta(days=2)
    [(session_id, user_id, product_id, category, price, started)] = query(
        s, "select session_id, user_id, product_id, category, price, session_started_at "
           "from analytics.processed_events where event_date = %s and product_id is not null "
           "and not is_returning_user order by event_id limit 1", (late_day,))
    [(first_user, first_start)] = query(
        s, "select user_id, min(session_started_at) from analytics.user_sessions "
           "group by user_id having min(session_started_at) > %s "
           "order by user_id limit 1", (datetime.combine(late_day, datetime.min.time(), UTC),))
    base = {"page_url": "https://shop.example.com/checkout",
            "user_agent": "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15",
            "ip_address": "198.51.100.23"}
    purchase = event_json(event_id=str(uuid.uuid4()), user_id=user_id, session_id=session_id,
                          event_type="purchase", event_timestamp=started + timedelta(minutes=1),
                          product_id=product_id, category=category, price=float(price),
                          quantity=3, **base)
    earlier_visit = event_json(
        event_id=str(uuid.uuid4()), user_id=first_user, session_id=str(uuid.uuid4()),
        event_type="page_view", event_timestamp=first_start - timedelta(days=1, hours=1),
        **base)
    very_late = event_json(
        event_id=str(uuid.uuid4()), user_id=first_user, session_id=str(uuid.uuid4()),
        event_type="page_view",
        event_timestamp=datetime.combine(END_DATE - timedelta(days=DAYS - 1),
                                         datetime.min.time(), UTC) + timedelta(hours=3),
        **base)
    return [purchase, earlier_visit, very_late], price * 3, late_day.isoformat(), category


def test_late_event_changes_only_its_own_days(warehouse: Warehouse) -> None:
    s = warehouse.settings
    daily = "select date::text, category, event_type, total_events, total_revenue " \
            "from analytics.daily_aggregations"
    before = {r[:3]: r[3:] for r in query(s, daily)}
    events, revenue, late_day, category = _late_events(s)
    land_events(s, events)
    proc = run_dbt(s, "build")

    after = {r[:3]: r[3:] for r in query(s, daily)}
    late = [json.loads(e) for e in events]
    expected: Counter[tuple[str, str, str]] = Counter(
        (e["event_timestamp"][:10], e.get("category") or "(none)", e["event_type"])
        for e in late)
    changed = {k: (after[k][0] - before.get(k, (0, 0))[0]) for k in after
               if after[k] != before.get(k)}
    assert changed == dict(expected)
    key = (late_day, category, "purchase")
    assert after[key][1] - before.get(key, (0, Decimal(0)))[1] == revenue

    # cost follows the new data: only the late events' days were re-read from raw,
    # not the whole lookback window (one day is outside it: caught by ingested_at)
    days = sorted({e["event_timestamp"][:10] for e in late})
    assert (f"int_events_sessionized: rebuilding {len(days)} changed event date(s) "
            f"{', '.join(days)}") in proc.stdout
    assert (END_DATE - timedelta(days=DAYS - 1)).isoformat() in days

    # the earlier visit moved that user's first session back: all later ones are returning
    first_user = late[1]["user_id"]
    assert query(s, "select bool_and(is_returning_user) from analytics.user_sessions "
                    "where user_id = %s and session_id <> %s",
                 (first_user, late[2]["session_id"])) == [(True,)]
    assert query(s, "select count(*) from analytics.processed_events "
                    "where event_id = any(%s::uuid[])",
                 ([e["event_id"] for e in late],)) == [(3,)]


def test_full_refresh_gives_identical_marts(warehouse: Warehouse) -> None:
    s = warehouse.settings
    incremental = {m: table_snapshot(s, f"analytics.{m}") for m in MARTS}
    assert query(s, "select count(*) from analytics.user_sessions "
                    "where is_returning_user") != [(0,)]
    run_dbt(s, "build", "--full-refresh")
    for mart in MARTS:
        assert table_snapshot(s, f"analytics.{mart}") == incremental[mart], mart


def test_a_server_crash_keeps_the_intermediate_tables_and_the_marts(
        warehouse: Warehouse) -> None:
    """The int_ tables are logged (once raw days are archived they hold history raw no
    longer has): a crash keeps them, and the next run leaves them and the marts as they
    were."""
    s = warehouse.settings
    before = {m: table_snapshot(s, f"analytics.{m}") for m in MARTS}
    held = {m: query(s, f"select count(*) from analytics_intermediate.{m}")
            for m in INTERMEDIATE}
    assert query(s, "select count(*) from pg_class where relpersistence = 'u' and "
                    "relnamespace = 'analytics_intermediate'::regnamespace") == [(0,)]
    postgres.stop(s, mode="immediate")
    postgres.start(s)
    for model in INTERMEDIATE:
        assert query(s, f"select count(*) from analytics_intermediate.{model}") == held[model]
    run_dbt(s, "build")
    for model in INTERMEDIATE:
        assert query(s, f"select count(*) from analytics_intermediate.{model}") == held[model]
    for mart in MARTS:
        assert table_snapshot(s, f"analytics.{mart}") == before[mart], mart


def test_reconciliation_test_catches_a_lost_event(warehouse: Warehouse) -> None:
    s = warehouse.settings
    [row] = query(s, "select * from analytics.processed_events order by event_id limit 1")
    columns = [r[0] for r in query(
        s, "select column_name from information_schema.columns where table_schema = "
           "'analytics' and table_name = 'processed_events' order by ordinal_position")]
    query(s, "delete from analytics.processed_events where event_id = %s returning 1",
          (row[0],))
    try:
        proc = run_dbt(s, "test", "--select", "assert_every_valid_event_processed_once",
                       check=False)
        assert proc.returncode == 1
        assert "FAIL 1 assert_every_valid_event_processed_once" in proc.stdout
    finally:
        query(s, f"insert into analytics.processed_events ({', '.join(columns)}) "
                 f"values ({', '.join(['%s'] * len(columns))})", row)


def test_docs_site_and_lint(warehouse: Warehouse) -> None:
    s = warehouse.settings
    run_dbt(s, "docs", "generate")
    target = dbt_target_dir(s)
    catalog = json.loads((target / "catalog.json").read_text())
    assert {n.split(".")[-1] for n in catalog["nodes"]} >= set(MARTS)
    manifest = json.loads((target / "manifest.json").read_text())
    assert {e.split(".")[-1] for e in manifest["exposures"]} >= {
        "ecommerce_analytics_pipeline", "business_dashboard"}
    assert (target / "index.html").exists()
    undocumented = [
        f"{node_id}.{column}" for node_id, node in catalog["nodes"].items()
        if node_id.startswith("model.") for column in node["columns"]
        if not manifest["nodes"][node_id]["columns"].get(column, {}).get("description")
    ]
    assert not undocumented

    lint = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/sqlfluff"), "lint", "dbt_project/models"], cwd=REPO_ROOT,
        env=s.subprocess_env(), text=True, capture_output=True, timeout=600, check=False)
    assert lint.returncode == 0, lint.stdout[-5000:] + lint.stderr[-2000:]


