"""Quality gates end to end: real PostgreSQL, real dbt, real Great Expectations, real broker.

One simulated day is landed in raw (ingestion's validator, as the stream would write it)
and built by dbt; every layer's gate passes on it. Then each kind of corruption is injected
(and undone): the gate fails, `ecom quality check` exits non-zero naming the expectation,
ops.data_quality_logs holds the failing row, and the alert is consumed back from Kafka.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from typer.testing import CliRunner

from ecom.config import REPO_ROOT, Settings
from ecom_app.seed import land_events, query, read_jsonl, run_dbt
from expectations.cli import app as quality_app
from expectations.store import previous_volumes
from tests.conftest import run_ecom

pytestmark = pytest.mark.integration

DAY = date(2024, 6, 20)
FIXTURE_TOPIC = "quality-fixture-events"
REJECT_TOPIC = "quality-fixture-rejects"
DAY_RANGE = ("event_timestamp >= %(day)s::timestamptz and "
             "event_timestamp < %(day)s::timestamptz + interval '1 day'")


@dataclass
class Warehouse:
    settings: Settings
    gx_root: Path
    events: int


@pytest.fixture(scope="module")
def warehouse(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """A simulated day in raw (ingested now), built into staging and marts by dbt."""
    work = tmp_path_factory.mktemp("quality")
    events = work / "events.jsonl"
    run_ecom(stack, "simulate", "backfill", "--days", "1", "--events-per-day", "1500",
             "--seed", "620", "--end-date", DAY.isoformat(), "--late-rate", "0",
             "--users", "400", "--products", "120", "--output", str(events),
             "--manifest", str(work / "manifest.json"), "--no-progress")
    landed = land_events(stack, read_jsonl(events), topic=FIXTURE_TOPIC)
    run_dbt(stack, "build")
    gx_root = work / "ge"
    shutil.copytree(REPO_ROOT / "expectations" / "gx", gx_root / "gx",
                    ignore=shutil.ignore_patterns("uncommitted"))
    return Warehouse(stack, gx_root, landed)


@dataclass
class Check:
    exit_code: int
    output: str
    run_id: str


def check(w: Warehouse, layer: str, day: date = DAY, *options: str) -> Check:
    """`ecom quality check <layer>` in-process (the real typer app, env of the stack)."""
    result = CliRunner().invoke(
        quality_app,
        ["check", layer, "--date", day.isoformat(), "--project-dir", str(w.gx_root), *options],
        env=w.settings.as_env(),
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    match = re.search(r"run_id = (\S+)", result.output)
    assert match, result.output
    return Check(result.exit_code, result.output, match.group(1))


def log_rows(settings: Settings, run_id: str) -> list[tuple[Any, ...]]:
    return query(
        settings,
        "select suite_name, expectation_type, column_name, success, unexpected_count, "
        "observed_value, logical_date, layer from ops.data_quality_logs where run_id = %s",
        (run_id,),
    )


def consume_alert(settings: Settings, run_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Read the alerts topic from the start (manual assignment, no group) for this run."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": "quality-tests-unused", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(settings.topic_alerts, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            payload = json.loads(msg.value())
            if payload.get("run_id") == run_id:
                assert msg.key() == payload["layer"].encode()
                return payload
    finally:
        consumer.close()
    raise AssertionError(f"no alert for run {run_id} on {settings.topic_alerts}")


def test_clean_day_passes_every_layer(warehouse: Warehouse) -> None:
    for layer in ("raw", "staging", "marts"):
        result = check(warehouse, layer)
        assert result.exit_code == 0, result.output
        assert f"{layer} gate passed for {DAY}" in result.output
        rows = log_rows(warehouse.settings, result.run_id)
        assert rows and all(r[3] for r in rows), rows
        assert {r[6] for r in rows} == {DAY} and {r[7] for r in rows} == {layer}
    volume = [r for r in log_rows(warehouse.settings, check(warehouse, "raw").run_id)
              if r[1] == "expect_table_row_count_to_be_between"]
    assert volume[0][5] == warehouse.events  # the day's events, all of them validated
    # the next day's volume bounds start from this day's logged volume
    assert previous_volumes(warehouse.settings, DAY + timedelta(days=1)) == [warehouse.events]


def test_a_day_without_data_fails_every_layer(warehouse: Warehouse) -> None:
    empty = DAY - timedelta(days=400)
    expected = {"raw": "FAIL raw_events: expect_table_row_count_to_be_between: observed 0",
                "staging": "FAIL stg_events: expect_table_row_count_to_be_between: observed 0",
                "marts": "FAIL daily_aggregations: expect_table_row_count_to_be_between: "
                         "observed 0"}
    for layer, line in expected.items():
        result = check(warehouse, layer, empty, "--no-alert")
        assert result.exit_code == 1, result.output
        assert line in result.output, result.output


# ---- corruptions: each changes the warehouse for the duration of a `with` block ----------

def _admin(settings: Settings, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    from ecom.db import connection

    with connection(settings, "admin") as conn, conn.cursor() as cur:
        cur.execute(sql, {"day": DAY.isoformat(), "topic": FIXTURE_TOPIC, **(params or {})})
        return cur.fetchall() if cur.description else []


Corruption = Callable[[Settings], AbstractContextManager[None]]


@contextmanager
def null_required_field(s: Settings) -> Iterator[None]:
    picked = _admin(s, f"select event_id, ip_address from raw.raw_events where kafka_topic = "
                       f"%(topic)s and {DAY_RANGE} order by event_id limit 3")
    _admin(s, "update raw.raw_events set ip_address = null "
              "where event_id = any(%(ids)s::uuid[])", {"ids": [r[0] for r in picked]})
    try:
        yield
    finally:
        for event_id, ip in picked:
            _admin(s, "update raw.raw_events set ip_address = %(ip)s "
                      "where event_id = %(id)s::uuid", {"ip": ip, "id": event_id})


@contextmanager
def out_of_set_event_type(s: Settings) -> Iterator[None]:
    ids = [r[0] for r in _admin(
        s, f"select event_id from raw.raw_events where kafka_topic = %(topic)s "
           f"and event_type = 'page_view' and {DAY_RANGE} order by event_id limit 2")]
    _admin(s, "update raw.raw_events set event_type = 'refund' "
              "where event_id = any(%(ids)s::uuid[])", {"ids": ids})
    try:
        yield
    finally:
        _admin(s, "update raw.raw_events set event_type = 'page_view' "
                  "where event_id = any(%(ids)s::uuid[])", {"ids": ids})


@contextmanager
def stale_data(s: Settings) -> Iterator[None]:
    shift = "interval '10 days'"  # beyond the freshness window (Settings.freshness_hours)
    _admin(s, f"update raw.raw_events set ingested_at = ingested_at - {shift}")
    try:
        yield
    finally:
        _admin(s, f"update raw.raw_events set ingested_at = ingested_at + {shift}")


@contextmanager
def too_many_rejects(s: Settings) -> Iterator[None]:
    (valid,), = _admin(s, f"select count(*) from raw.raw_events where {DAY_RANGE}")
    rejects = int(valid * 0.2)  # 1/6 of the day's records: far above max_reject_ratio
    _admin(s, """
        insert into raw.rejected_events (kafka_topic, kafka_partition, kafka_offset,
            raw_value, reason_code, reason_message)
        select %(rejects_topic)s, 0, i,
            '{"event_type":"purchase","price":-3.5,"event_timestamp":"' || %(day)s
            || 'T10:00:00.000Z"}', 'negative_price', 'price -3.50 is negative'
        from generate_series(1, %(n)s) as g (i)""", {"rejects_topic": REJECT_TOPIC, "n": rejects})
    try:
        yield
    finally:
        _admin(s, "delete from raw.rejected_events where kafka_topic = %(t)s",
               {"t": REJECT_TOPIC})


@contextmanager
def duplicated_mart_row(s: Settings) -> Iterator[None]:
    (new_id,), = _admin(s, """
        with copy as (
            select * from analytics.daily_aggregations where date = %(day)s
            order by category, event_type limit 1
        )
        insert into analytics.daily_aggregations
        select gen_random_uuid(), date, category, event_type, total_events, total_revenue,
            unique_users, unique_sessions, conversion_rate, avg_order_value, top_products,
            created_at, updated_at
        from copy returning id""")
    try:
        yield
    finally:
        _admin(s, "delete from analytics.daily_aggregations where id = %(id)s", {"id": new_id})


@contextmanager
def negative_mart_revenue(s: Settings) -> Iterator[None]:
    (row_id, revenue), = _admin(s, """
        select id, total_revenue from analytics.daily_aggregations
        where date = %(day)s and event_type = 'page_view' order by category limit 1""")
    _admin(s, "update analytics.daily_aggregations set total_revenue = -5 where id = %(id)s",
           {"id": row_id})
    try:
        yield
    finally:
        _admin(s, "update analytics.daily_aggregations set total_revenue = %(r)s "
                  "where id = %(id)s", {"r": revenue, "id": row_id})


CORRUPTIONS = [
    # (corruption, layer, failing suite, failing expectation, its column)
    (null_required_field, "raw", "raw_events", "expect_column_values_to_not_be_null",
     "ip_address"),
    (null_required_field, "staging", "stg_events", "expect_column_values_to_not_be_null",
     "ip_address"),
    (out_of_set_event_type, "raw", "raw_events", "expect_column_values_to_be_in_set",
     "event_type"),
    (stale_data, "raw", "raw_feed", "expect_column_max_to_be_between", "newest_ingested_at"),
    (too_many_rejects, "raw", "raw_feed", "expect_column_max_to_be_between", "reject_ratio"),
    (duplicated_mart_row, "marts", "daily_aggregations", "expect_compound_columns_to_be_unique",
     "date,category,event_type"),
    (negative_mart_revenue, "marts", "daily_aggregations", "expect_column_values_to_be_between",
     "total_revenue"),
]


@pytest.mark.parametrize(("corruption", "layer", "suite", "expectation", "column"), CORRUPTIONS,
                         ids=[f"{c[0].__name__}-{c[1]}" for c in CORRUPTIONS])
def test_corruption_fails_the_gate_logs_and_alerts(
    warehouse: Warehouse, corruption: Corruption, layer: str, suite: str, expectation: str,
    column: str,
) -> None:
    s = warehouse.settings
    with corruption(s):
        result = check(warehouse, layer)
    assert result.exit_code == 1, result.output
    assert f"{layer} gate FAILED for {DAY}" in result.output
    line = f"FAIL {suite}: {expectation}({column}): "
    assert any(out.startswith(line) for out in result.output.splitlines()), result.output

    failing = [r for r in log_rows(s, result.run_id) if not r[3]]
    assert (suite, expectation, column) in {(r[0], r[1], r[2]) for r in failing}, failing

    alert = consume_alert(s, result.run_id)
    assert (alert["layer"], alert["logical_date"]) == (layer, DAY.isoformat())
    named = [f for f in alert["failed"]
             if (f["suite"], f["expectation"], f["column"]) == (suite, expectation, column)]
    assert named, alert
    assert alert["failed_count"] == len(failing)
    if named[0]["unexpected_count"] is not None:
        assert named[0]["unexpected_count"] >= 1


def test_undone_corruptions_leave_a_clean_day(warehouse: Warehouse) -> None:
    for layer in ("raw", "marts"):
        result = check(warehouse, layer)
        assert result.exit_code == 0, result.output


def test_console_entry_point_exits_non_zero_on_failure(warehouse: Warehouse) -> None:
    s = warehouse.settings
    args = ("quality", "check", "raw", "--date", DAY.isoformat(),
            "--project-dir", str(warehouse.gx_root), "--no-alert")
    with out_of_set_event_type(s):
        proc = run_ecom(s, *args, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failures = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL ")]
    assert any("expect_column_values_to_be_in_set(event_type)" in ln for ln in failures)
    assert run_ecom(s, *args).returncode == 0
    bad = run_ecom(s, "quality", "check", "raw", "--date", "2024-02-30", check=False)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr and "Traceback" not in bad.stderr


def test_data_docs_are_built_and_their_path_printed(warehouse: Warehouse) -> None:
    result = CliRunner().invoke(quality_app, ["docs", "--project-dir", str(warehouse.gx_root)],
                                env=warehouse.settings.as_env())
    assert result.exit_code == 0, result.output
    index = Path(result.output.strip().splitlines()[-1])
    assert index.name == "index.html" and index.is_file()
    site = index.read_text()
    for suite in ("raw_events", "raw_feed", "stg_events", "daily_aggregations"):
        assert suite in site
