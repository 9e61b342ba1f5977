"""The dashboards on a real warehouse: every page's numbers equal SQL over the warehouse,
empty and broken warehouses give one sentence, the reader's connection cannot read raw
or ops, and every page renders in a real browser (Debian's chromium).

One private stack for the module, filled by the real pipeline: simulated days into the
broker, `ecom ingest stream --available-now` (Spark: raw events, dead letters, the ledger,
the realtime windows), more events left un-ingested (so there is lag), `dbt build`, two
Great Expectations gates (one passing, one failing) and a DAG run's task log written by
the DAG's own callback code. Pages run in Streamlit's AppTest (in this process) with the
stack's settings in the environment; the expected figures come from SQL over raw, ops and
the marts written here, not from the pages' queries.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from ecom_pipeline.execution_log import TaskAttempt, record_end, record_start
from streamlit.testing.v1 import AppTest

from dashboards import formatting
from dashboards.queries import PAGES
from dashboards.warehouse import Query, Warehouse
from ecom.config import REPO_ROOT, Settings
from ecom.errors import UserError
from ecom.ports import free_port
from ecom_app import dashboard
from ecom_app.seed import land_stream, query, read_jsonl, run_dbt
from ingestion.kafka_client import make_client
from simulator.manifest import load_manifest
from tests.conftest import private_stack, run_ecom
from tests.dashboard_browser import browser, render

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

END_DATE = date(2026, 2, 10)
PAGE_SCRIPTS = REPO_ROOT / "dashboards" / "app_pages"
DAG_RUN = "manual__dashboard-test"
NO_DATA = "No data yet: run `make demo`"


@dataclass
class Filled:
    settings: Settings
    not_ingested: int  # messages produced after the stream drained: the lag


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    with private_stack(tmp_path_factory, "ecom-dashboards") as settings:
        work = tmp_path_factory.mktemp("dashboards")
        run_ecom(settings, "simulate", "backfill", "--days", "2", "--events-per-day", "1500",
                 "--end-date", END_DATE.isoformat(), "--seed", "1515", "--bad-rate", "0.03",
                 "--late-rate", "0.02", "--users", "400", "--products", "120",
                 "--manifest", str(work / "history.json"), "--no-progress")
        run_ecom(settings, "ingest", "stream", "--available-now", "--max-rows-per-batch",
                 "1000", timeout=900)
        run_ecom(settings, "simulate", "backfill", "--days", "1", "--events-per-day", "40",
                 "--end-date", END_DATE.isoformat(), "--seed", "1516",
                 "--manifest", str(work / "late.json"), "--no-progress")
        late = load_manifest(work / "late.json")
        run_dbt(settings, "build")
        gx = work / "ge"
        shutil.copytree(REPO_ROOT / "expectations" / "gx", gx / "gx",
                        ignore=shutil.ignore_patterns("uncommitted"))
        for layer, day in (("raw", END_DATE), ("marts", END_DATE - timedelta(days=5))):
            run_ecom(settings, "quality", "check", layer, "--date", day.isoformat(),
                     "--project-dir", str(gx), "--no-alert", check=False, timeout=600)
        _log_dag_run(settings)
        yield Filled(settings, late.messages_acknowledged)


def _log_dag_run(settings: Settings) -> None:
    """A DAG run's task log, written by the DAG's callback code: two tasks succeed, the
    third fails after a retry."""
    started = datetime.now(UTC) - timedelta(minutes=10)
    steps = [("extract", 1, "success", None), ("gate_raw", 1, "success", None),
             ("transform_marts.daily_aggregations_run", 1, "up_for_retry", "boom"),
             ("transform_marts.daily_aggregations_run", 2, "failed", "relation missing\nat")]
    for n, (task, tries, status, error) in enumerate(steps):
        attempt = TaskAttempt("ecommerce_analytics_pipeline", DAG_RUN, task, tries, END_DATE)
        begin = started + timedelta(seconds=30 * n)
        record_start(settings, attempt, begin)
        record_end(settings, attempt, status, started_at=begin,
                   ended_at=begin + timedelta(seconds=20), rows_affected=10, error_text=error)


# ---- running a page -------------------------------------------------------------------------
@pytest.fixture
def page_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`page_env(settings, page)` -> the page run once in AppTest with these settings."""

    def run(settings: Settings, page: str) -> AppTest:
        for name in [n for n in os.environ if n.startswith("ECOM_")]:
            monkeypatch.delenv(name)
        for name, value in settings.as_env().items():
            monkeypatch.setenv(name, value)
        st.cache_data.clear()
        st.cache_resource.clear()
        app = AppTest.from_file(str(PAGE_SCRIPTS / f"{page}.py"), default_timeout=120)
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return run


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def texts(app: AppTest) -> str:
    """Everything the page wrote as text (alerts, captions, markdown)."""
    parts = [e.value for kind in (app.info, app.warning, app.error, app.caption, app.markdown)
             for e in kind]
    return "\n".join(str(p) for p in parts)


def one(settings: Settings, sql: str, params: Any = None) -> Any:
    [(value,)] = query(settings, sql, params)
    return value


# ---- business -------------------------------------------------------------------------------
def business_expected(s: Settings, start: date, end: date, categories: list[str]
                      ) -> dict[str, str]:
    revenue = one(s, "select coalesce(sum(total_revenue), 0) from analytics.daily_aggregations "
                     "where event_type = 'purchase' and date between %s and %s "
                     "and category = any(%s)", (start, end, categories))
    orders = one(s, "select count(distinct session_id) from raw.raw_events "
                    "where event_type = 'purchase' and category = any(%s) and "
                    "(event_timestamp at time zone 'UTC')::date between %s and %s",
                 (categories, start, end))
    sessions = one(s, "select count(*) from analytics.user_sessions "
                      "where session_date between %s and %s", (start, end))
    return {
        "Revenue": formatting.money(revenue), "Orders": formatting.count(orders),
        "Average order value": formatting.money(revenue / orders if orders else None),
        "Conversion": formatting.share(orders / sessions if sessions else None),
        "Sessions": formatting.count(sessions),
    }


def test_business_page_numbers_equal_sql_over_the_warehouse(
        warehouse: Filled, page_env: Any) -> None:
    s = warehouse.settings
    app = page_env(s, "business")
    first, last = query(s, "select min(date), max(date) from analytics.daily_aggregations")[0]
    categories = [r[0] for r in query(s, "select distinct category from "
                                         "analytics.daily_aggregations where category <> "
                                         "'(none)' order by 1")]
    assert len(categories) >= 3 and (last - first).days >= 1
    start = max(first, last - timedelta(days=29))
    assert metrics(app) == business_expected(s, start, last, categories)
    assert len(app.get("vega_lite_chart")) >= 8

    # one category, one day: the figures follow the filters
    app.multiselect(key="business_categories").set_value([categories[0]])
    app.date_input(key="business_days").set_value((last, last)).run()
    assert not app.exception
    assert metrics(app) == business_expected(s, last, last, [categories[0]])

    # no category: the charts stay, empty, with a note; nothing fails
    app.multiselect(key="business_categories").set_value([]).run()
    assert not app.exception
    shown = metrics(app)
    assert shown["Revenue"] == "0.00" and shown["Orders"] == "0"
    assert "No category selected" in texts(app)
    assert len(app.get("vega_lite_chart")) >= 8


# ---- realtime -------------------------------------------------------------------------------
def test_realtime_page_shows_the_newest_windows(warehouse: Filled, page_env: Any) -> None:
    s = warehouse.settings
    app = page_env(s, "realtime")
    newest = one(s, "select max(window_start) from raw.realtime_metrics")
    events, revenue = query(
        s, "select sum(events), sum(revenue) from raw.realtime_metrics "
           "where window_start > %s - interval '1 hour' and window_start <= %s",
        (newest, newest))[0]
    shown = metrics(app)
    end = newest + timedelta(minutes=5)
    assert shown["Newest window ends"] == f"{end.astimezone(UTC):%H:%M} UTC"
    assert shown["Events, last hour shown"] == formatting.count(events)
    assert shown["Revenue, last hour shown"] == formatting.money(revenue)
    # the simulated days are in the past: the page says the stream is not live
    assert "The newest window is" in texts(app) and "Showing the 3 h up to it" in texts(app)
    assert len(app.get("vega_lite_chart")) == 2


# ---- operations -----------------------------------------------------------------------------
def expected_lag(s: Settings) -> int:
    client = make_client(s.kafka_bootstrap_servers, s.kafka_client)
    try:
        ends = client.log_ends(s.topic_events, client.partitions(s.topic_events))
    finally:
        client.close()
    committed = dict(query(
        s, "select p.key::int, max(p.value::bigint) from ops.ingest_batches, "
           "jsonb_each_text(end_offsets) as p group by 1"))
    return sum(end - committed.get(p, 0) for p, end in ends.items())


def test_operations_page_numbers_equal_the_ledger_and_the_broker(
        warehouse: Filled, page_env: Any) -> None:
    s = warehouse.settings
    app = page_env(s, "operations")
    landed = one(s, "select sum(rows_valid) from ops.ingest_batches "
                    "where committed_at >= now() - interval '7 days'")
    dead = one(s, "select count(*) from raw.rejected_events "
                  "where received_at >= now() - interval '7 days'")
    lag = expected_lag(s)
    # the events produced after the stream drained are exactly the lag
    assert lag == warehouse.not_ingested > 0
    assert metrics(app) == {
        "Last DAG run": "failed", "Failed runs": "1", "Events landed": formatting.count(landed),
        "Dead letters": formatting.count(dead), "Lag (records)": formatting.count(lag),
    }
    frames = {tuple(f.value.columns): f.value for f in app.dataframe}
    services = next(v for k, v in frames.items() if k == ("service", "state"))
    states = dict(zip(services["service"], services["state"], strict=True))
    assert states["PostgreSQL"].startswith("running") and states["Kafka"].startswith("running")
    lag_rows = next(v for k, v in frames.items() if "lag" in k)
    assert int(lag_rows["lag"].sum()) == lag
    failed = next(v for k, v in frames.items() if k == ("task_id", "try_number",
                                                         "error_summary"))
    assert failed.to_dict("records") == [{"task_id": "transform_marts.daily_aggregations_run",
                                          "try_number": 2, "error_summary": "relation missing"}]
    dead_letters = next(v for k, v in frames.items() if "reason_message" in k)
    assert "raw_value" not in dead_letters.columns and len(dead_letters) == min(dead, 50)


# ---- data quality ---------------------------------------------------------------------------
def test_quality_page_numbers_equal_the_gate_logs(warehouse: Filled, page_env: Any) -> None:
    s = warehouse.settings
    app = page_env(s, "quality")
    latest = """
        select distinct on (logical_date, layer) run_id, bool_and(success) over w,
               count(*) over w, count(*) filter (where not success) over w
        from ops.data_quality_logs
        window w as (partition by run_id)
        order by logical_date, layer, run_started_at desc"""
    runs = query(s, latest)
    days = one(s, "select count(distinct logical_date) from ops.data_quality_logs")
    evaluated = sum(r[2] for r in runs)
    failing = sum(r[3] for r in runs)
    assert failing > 0 and days == 2  # the marts gate of a day without data fails
    assert metrics(app) == {
        "Days gated": formatting.count(days),
        "Gates failed": formatting.count(sum(not r[1] for r in runs)),
        "Failing expectations": formatting.count(failing),
        "Pass rate": formatting.share(1 - failing / evaluated),
        "Stale sources": "0",
    }
    failing_rows = next(f.value for f in app.dataframe if "expectation_type" in f.value.columns)
    assert len(failing_rows) == failing
    assert "observed_value" not in failing_rows.columns  # samples may hold an IP address


# ---- empty and broken -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def empty_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A fresh clone's warehouse: migrated, never built by dbt."""
    with private_stack(tmp_path_factory, "ecom-dashboards-empty") as settings:
        yield settings


@pytest.mark.parametrize("page", sorted(PAGES))
def test_an_empty_warehouse_says_to_run_the_demo(
        empty_stack: Settings, page_env: Any, page: str) -> None:
    app = page_env(empty_stack, page)
    assert any(NO_DATA in str(i.value) for i in app.info), texts(app)
    assert not app.error


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_wrong_password_or_a_stopped_database_is_one_sentence(
        warehouse: Filled, page_env: Any, page: str) -> None:
    s = warehouse.settings
    cases = {
        "PostgreSQL refused the reader login": s.replace(pg_reader_password="not-the-password"),
        "Cannot reach PostgreSQL at": s.replace(pg_port=free_port()),
    }
    for sentence, broken in cases.items():
        app = page_env(broken, page)
        [error] = app.error
        assert sentence in str(error.value)
        assert "Traceback" not in str(error.value) and "\n" not in str(error.value).strip()
        assert not app.metric


# ---- the reader role ------------------------------------------------------------------------
def test_the_dashboards_connection_reads_analytics_only(warehouse: Filled) -> None:
    wh = Warehouse(warehouse.settings)
    try:
        assert not wh.frame(Query("marts", "select * from analytics.daily_aggregations "
                                           "limit 1")).empty
        for relation in ("raw.raw_events", "raw.rejected_events", "raw.realtime_metrics",
                         "ops.ingest_batches", "ops.data_quality_logs",
                         "analytics_staging.stg_ecommerce__events",
                         "analytics_intermediate.int_events_sessionized"):
            with pytest.raises(UserError, match="may not read"):
                wh.frame(Query("probe", f"select * from {relation} limit 1"))
        with pytest.raises(UserError, match="read-only transaction"):
            wh.frame(Query("write", "create table analytics.intruder (i int)"))
    finally:
        wh.close()


# ---- a real browser -------------------------------------------------------------------------
def test_every_page_renders_in_chromium(warehouse: Filled, tmp_path: Path) -> None:
    s = warehouse.settings.replace(dashboard_port=free_port())
    up = run_ecom(s, "dashboard", "up", timeout=120)
    try:
        base = dashboard.url(s)
        assert base in up.stdout
        assert f"{base}quality" in run_ecom(s, "dashboard", "status").stdout
        revenue = one(s, "select sum(total_revenue) from analytics.daily_aggregations")
        headline = {
            "business": ("Revenue", formatting.money(revenue)),
            "realtime": ("Newest window ends", None),
            "operations": ("Lag (records)", formatting.count(warehouse.not_ingested)),
            "quality": ("Days gated", "2"),
        }
        with browser() as chromium:
            for page, (label, value) in headline.items():
                shown = render(chromium, f"{base}{page}", tmp_path / f"{page}.png")
                assert not shown.exceptions and not shown.errors, (page, shown.exceptions,
                                                                   shown.errors)
                assert not shown.script_errors, (page, shown.script_errors)  # Vega drew all
                assert shown.charts >= 1 and shown.screenshot.stat().st_size > 20_000, page
                assert label in shown.metrics, (page, shown.metrics)
                if value is not None:
                    assert shown.metrics[label] == value, (page, shown.metrics)
            home = render(chromium, base)  # `/` opens the business page
            assert "Revenue" in home.metrics and not home.exceptions
    finally:
        down = run_ecom(s, "dashboard", "down")
    assert "stopped the dashboards" in down.stdout
    assert "stopped" in run_ecom(s, "dashboard", "status").stdout


def test_a_taken_port_is_one_sentence(warehouse: Filled) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        s = warehouse.settings.replace(dashboard_port=taken.getsockname()[1])
        proc = run_ecom(s, "dashboard", "up", check=False)
    assert proc.returncode == 2
    assert "is taken, so the dashboards cannot start there" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- the ledger rollups (last: it adds batches of another topic to the ledger) -----------------
HOURS_DIRECT = """
    select date_trunc('hour', committed_at, 'UTC'), count(*), sum(rows_read),
           sum(rows_valid), sum(rows_rejected), sum(rows_duplicate), max(committed_at)
    from ops.ingest_batches group by 1 order by 1"""
HOURS_VIEW = """
    select committed_hour, batches, rows_read, rows_valid, rows_rejected, rows_duplicate,
           last_committed_at
    from analytics.ingestion_hourly order by 1"""
OFFSETS_DIRECT = """
    select b.kafka_epoch, e.key::int, min((b.start_offsets ->> e.key)::bigint),
           max(e.value::bigint), max(b.committed_at)
    from ops.ingest_batches as b, jsonb_each_text(b.end_offsets) as e
    group by 1, 2 order by 1, 2"""
OFFSETS_VIEW = """
    select kafka_epoch, kafka_partition, first_offset, committed_offset, last_committed_at
    from analytics.ingestion_partition_offsets order by 1, 2"""


def test_ledger_rollups_and_the_batches_since_equal_the_ledger(
        warehouse: Filled, tmp_path: Path) -> None:
    """The hourly and per-partition views = their rollups up to the last dbt run + the
    ledger rows since: equal to the whole ledger before and after new batches land, and
    after an incremental run folds them in."""
    s = warehouse.settings

    def same() -> None:
        assert query(s, HOURS_VIEW) == query(s, HOURS_DIRECT)
        assert query(s, OFFSETS_VIEW) == query(s, OFFSETS_DIRECT)

    same()
    rolled = query(s, "select count(*), sum(batches) "
                      "from analytics_intermediate.int_ingest_hours")
    events = tmp_path / "more.jsonl"
    run_ecom(s, "simulate", "backfill", "--days", "1", "--events-per-day", "300", "--seed", "7",
             "--end-date", END_DATE.isoformat(), "--output", str(events), "--no-progress")
    landed = land_stream(s, read_jsonl(events), topic="dashboards-rollup-test",
                         batch_records=40, windows=False)
    assert landed.batches >= 5
    same()  # the new batches are read live
    assert query(s, "select count(*), sum(batches) "
                    "from analytics_intermediate.int_ingest_hours") == rolled
    run_dbt(s, "run", "--select", "int_ingest_hours", "int_ingest_partition_offsets")
    same()  # folded into the rollups by an incremental run
    [(batches,)] = query(s, "select sum(batches) from analytics_intermediate.int_ingest_hours")
    assert batches == rolled[0][1] + landed.batches
