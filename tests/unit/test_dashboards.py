"""The dashboards' pure parts: what each page's SQL may read (the marts its dbt exposure
declares, `analytics` only), the server command line, formatting, and the page helpers
that turn query results into what is drawn. The pages against a real warehouse and in a
real browser: tests/integration/test_dashboards.py."""

from __future__ import annotations

import ast
import re
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
import yaml

from dashboards import charts, formatting
from dashboards.queries import PAGES, marts_read, relations_read
from dashboards.queries import realtime as realtime_q
from dashboards.views.business import abandonment_by_day, day_range, funnel_by_device
from dashboards.views.operations import lag_table
from dashboards.views.quality import gate_state, pass_rate_by_day
from ecom.config import REPO_ROOT, Settings
from ecom_app import dashboard

EXPOSURES = REPO_ROOT / "dbt_project" / "models" / "marts" / "_marts__exposures.yml"


def _dashboard_exposures() -> dict[str, dict]:
    exposures = yaml.safe_load(EXPOSURES.read_text())["exposures"]
    return {e["url"].rsplit("/", 1)[1]: e for e in exposures if e["type"] == "dashboard"}


# ---- what the pages read -----------------------------------------------------------------------
def test_pages_read_the_analytics_schema_only() -> None:
    for page, queries in PAGES.items():
        schemas = {schema for schema, _ in relations_read(queries)}
        assert schemas == {"analytics"}, page
        for query in queries:
            # every relation a statement reads is schema-qualified or one of its own CTEs
            ctes = set(re.findall(r"(\w+) as (?:materialized )?\(", query.sql, re.I))
            sql = re.sub(r"extract\([^)]*\)", "", query.sql)  # `extract(epoch from x)`
            for name in re.findall(r"\b(?:from|join)\s+([\w.]+)", sql, re.I):
                assert name.startswith("analytics.") or name in ctes, (page, query.name, name)


def test_each_exposure_declares_exactly_the_marts_its_page_reads() -> None:
    exposures = _dashboard_exposures()
    assert set(exposures) == set(PAGES) == set(dashboard.PAGES)
    for page, queries in PAGES.items():
        declared = {re.fullmatch(r"ref\('(\w+)'\)", d)[1]
                    for d in exposures[page]["depends_on"]}
        assert declared == marts_read(queries), page


def test_exposure_urls_are_the_pages_on_the_default_port() -> None:
    default = Settings().dashboard_port
    for page, exposure in _dashboard_exposures().items():
        assert exposure["url"] == dashboard.url(Settings(), page)
        assert exposure["url"] == f"http://127.0.0.1:{default}/{page}"


def test_the_app_serves_every_page_at_its_path() -> None:
    tree = ast.parse((REPO_ROOT / "dashboards" / "app.py").read_text())
    pages = next(ast.literal_eval(node.value) for node in tree.body
                 if isinstance(node, ast.Assign) and node.targets[0].id == "PAGES")
    assert set(pages) == set(PAGES)
    for path, (_title, script, _icon) in pages.items():
        assert (REPO_ROOT / "dashboards" / script).is_file(), script
        assert f"dashboards.views import {path}" in (REPO_ROOT / "dashboards" / script
                                                     ).read_text()


# ---- the server ----------------------------------------------------------------------------------
def test_server_command_listens_on_loopback_at_the_configured_port() -> None:
    settings = Settings(dashboard_port=8765)
    cmd = dashboard.command(settings)
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(dashboard.APP)
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--server.port"] == "8765"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.fileWatcherType"] == "none"
    assert flags["--client.showErrorDetails"] == "type"  # never a traceback in the browser
    assert dashboard.command(settings, "0.0.0.0")[6] == "0.0.0.0"
    assert dashboard.pid_file(settings).parent == settings.run_dir
    assert dashboard.log_file(settings).parent == settings.log_dir


def test_dashboard_port_is_validated() -> None:
    from ecom.errors import UserError

    with pytest.raises(UserError, match="ECOM_DASHBOARD_PORT='0' is not valid"):
        Settings.from_env({"ECOM_DASHBOARD_PORT": "0"})


# ---- formatting ----------------------------------------------------------------------------------
def test_formatting() -> None:
    assert formatting.count(1234567) == "1,234,567"
    assert formatting.count(12.6) == "13"
    assert formatting.count(None) == formatting.count(float("nan")) == "-"
    assert formatting.money(55643.06) == "55,643.06"
    assert formatting.money(0.005) == "0.01"
    assert formatting.share(0.036342) == "3.63%"
    assert formatting.share(None) == "-"
    assert formatting.age(timedelta(seconds=42)) == "42 s"
    assert formatting.age(timedelta(minutes=7, seconds=5)) == "7 min"
    assert formatting.age(timedelta(hours=3, minutes=5)) == "3 h 5 min"
    assert formatting.age(timedelta(days=2, hours=4)) == "2 d 4 h"
    assert formatting.age(timedelta(seconds=-3)) == "0 s"
    assert formatting.hours(0.5) == "30 min"


# ---- page helpers --------------------------------------------------------------------------------
def test_day_range_accepts_what_the_date_input_returns() -> None:
    fallback = (date(2026, 1, 1), date(2026, 1, 31))
    assert day_range((date(2026, 1, 5), date(2026, 1, 9)), fallback) == (
        date(2026, 1, 5), date(2026, 1, 9))
    assert day_range((date(2026, 1, 5),), fallback) == (date(2026, 1, 5), date(2026, 1, 5))
    assert day_range(date(2026, 1, 7), fallback) == (date(2026, 1, 7), date(2026, 1, 7))
    assert day_range((), fallback) == fallback


def test_funnel_and_abandonment_sum_days_and_devices() -> None:
    funnel = pd.DataFrame([
        (date(2026, 1, 1), "mobile", 10, 10, 4, 1, 3),
        (date(2026, 1, 2), "mobile", 20, 19, 6, 3, 3),
        (date(2026, 1, 1), "desktop", 5, 5, 0, 0, 0),
    ], columns=["date", "device_type", "sessions", "viewed", "carted", "purchased",
                "abandoned"])
    devices = funnel_by_device(funnel).set_index("device_type")
    assert devices.loc["mobile", "sessions"] == 30
    assert devices.loc["mobile", "conversion_rate"] == pytest.approx(4 / 30)
    assert devices.loc["mobile", "abandonment_rate"] == pytest.approx(6 / 10)
    assert pd.isna(devices.loc["desktop", "abandonment_rate"])  # no cart: no rate, no 0/0
    days = abandonment_by_day(funnel).set_index("date")["abandonment_rate"]
    assert list(days.round(4)) == [0.75, 0.5]


def test_lag_is_the_log_end_minus_the_committed_offset() -> None:
    offsets = pd.DataFrame({"kafka_partition": [0, 1], "committed_offset": [100, 40]})
    table = lag_table(offsets, {0: 130, 1: 40, 2: 7})
    assert table.to_dict("records") == [
        {"partition": 0, "committed offset": 100, "log end": 130, "lag": 30},
        {"partition": 1, "committed offset": 40, "log end": 40, "lag": 0},
        {"partition": 2, "committed offset": 0, "log end": 7, "lag": 7},  # never ingested
    ]
    unknown = lag_table(offsets, {})  # Kafka unreachable: committed offsets, no lag
    assert unknown["lag"].isna().all() and list(unknown["committed offset"]) == [100, 40]


def test_gate_states_and_pass_rate() -> None:
    gates = pd.DataFrame([
        (date(2026, 1, 1), "raw", 20, 0, True), (date(2026, 1, 1), "marts", 28, 2, False),
        (date(2026, 1, 2), "raw", 20, 0, True),
    ], columns=["logical_date", "layer", "expectations", "expectations_failed", "is_success"])
    assert list(gate_state(gates)["result"]) == ["pass", "fail", "pass"]
    rates = pass_rate_by_day(gates)["pass_rate"].round(4).tolist()
    assert rates == [round(1 - 2 / 48, 4), 1.0]


def test_realtime_is_live_while_the_shown_hours_end_now() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    frames = (pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    live = realtime_q.Realtime(now - timedelta(minutes=2), None, now, now, *frames)
    assert live.live and live.age == timedelta(minutes=2)
    stopped = now - timedelta(days=2)
    old = realtime_q.Realtime(stopped + realtime_q.WINDOW, None, now, stopped, *frames)
    assert not old.live and old.age == timedelta(days=2) - realtime_q.WINDOW
    nothing = realtime_q.Realtime(None, None, now, now, *frames)
    assert nothing.age is None


def test_charts_draw_empty_frames() -> None:
    """A filter that selects nothing still gets its chart (axes, no marks)."""
    empty = pd.DataFrame({"date": pd.to_datetime([], utc=True), "revenue": [], "category": []})
    specs = [
        charts.over_time(empty, "date", "revenue", "category", title="t", y_title="y"),
        charts.over_time(empty, "date", "revenue", None, mark="bar", title="t", y_title="y"),
        charts.bars(empty, "category", "revenue", title="t", value_title="v"),
        charts.states(pd.DataFrame({"d": [], "l": [], "r": []}), "d", "l", "r", title="t"),
        charts.windows(pd.DataFrame({"s": [], "e": [], "n": [], "k": []}), "s", "e", "n", "k",
                       title="t", y_title="y"),
        charts.with_limit(charts.over_time(empty, "date", "revenue", None, title="t",
                                           y_title="y"), 0.05, "limit"),
    ]
    for spec in specs:
        assert spec.to_dict()["$schema"].startswith("https://vega.github.io/schema/vega-lite")


def test_realtime_rows_become_the_pages_frames() -> None:
    """The realtime statement's head row and parts, as `load` splits them."""
    now, newest = 1_767_225_600.0, 1_767_225_300.0  # epoch seconds; newest = now - 5 min

    class Rows:
        def rows(self, query: object, params: dict) -> tuple[list[str], list[tuple]]:
            assert params == {"hours": 3}
            return [], [
                ("category", int(newest), "books", None, 2, 30.5, None, None, None, None),
                ("head", None, None, None, None, None, newest, now, now, now - 1),
                ("total", None, "page_view", "(none)", 40, 0.0, None, None, None, None),
                ("total", None, "purchase", "books", 2, 30.5, None, None, None, None),
                ("type", int(newest), "page_view", None, 40, 0.0, None, None, None, None),
                ("type", int(newest), "purchase", None, 2, 30.5, None, None, None, None),
            ]

    data = realtime_q.load(Rows(), 3)  # type: ignore[arg-type]
    assert data.newest_window_end == datetime.fromtimestamp(newest, UTC) + realtime_q.WINDOW
    assert data.live and data.age == timedelta(0)
    assert data.last_update == datetime.fromtimestamp(now - 1, UTC)
    assert data.by_type["events"].tolist() == [40, 2]
    assert (data.by_type["window_end"] - data.by_type["window_start"]).eq(
        realtime_q.WINDOW).all()
    assert data.by_category[["category", "revenue"]].values.tolist() == [["books", 30.5]]
    assert data.totals.to_dict("records")[1] == {"event_type": "purchase", "category": "books",
                                                 "events": 2, "revenue": 30.5}
