"""Data quality page: gate results per day and layer, failing expectations, the pass-rate
trend, each source's freshness, the reject-ratio trend."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from dashboards import charts, formatting
from dashboards.queries import quality as q
from dashboards.views import common
from dashboards.views.business import day_range
from dashboards.warehouse import NoData, Warehouse
from ecom.config import Settings

DEFAULT_DAYS = 30
ARRIVAL_DAYS = 30
TTL_S = 60
LAYERS = ("raw", "staging", "marts")


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _bounds(_wh: Warehouse, key: str) -> pd.DataFrame:
    return _wh.frame(q.BOUNDS)


@st.cache_data(ttl=TTL_S, show_spinner="Reading the quality results ...")
def _load(_wh: Warehouse, key: str, start: date, end: date) -> dict[str, pd.DataFrame]:
    return q.load(_wh, start, end, ARRIVAL_DAYS)


def gate_state(gates: pd.DataFrame) -> pd.DataFrame:
    """One cell per day and layer: pass or fail, with the counts."""
    out = gates.copy()
    out["result"] = out["is_success"].map({True: "pass", False: "fail"})
    out["day"] = out["logical_date"].astype(str)
    return out


def pass_rate_by_day(gates: pd.DataFrame) -> pd.DataFrame:
    """Share of the day's expectations that passed, over the newest run of each layer."""
    days = gates.groupby("logical_date", as_index=False)[
        ["expectations", "expectations_failed"]].sum()
    days["pass_rate"] = 1 - days["expectations_failed"] / days["expectations"]
    return common.as_datetime(days, "logical_date")


def _body(settings: Settings) -> None:
    wh, key = common.warehouse(settings), common.cache_key(settings)
    bounds = _bounds(wh, key).iloc[0]
    if not bounds["runs"]:
        raise NoData("No data yet: run `make demo` (no quality gate has run).")
    first, last = bounds["first_date"], bounds["last_date"]
    default = (max(first, last - timedelta(days=DEFAULT_DAYS - 1)), last)
    left, _, right = st.columns([2, 4, 1], vertical_alignment="bottom")
    start, end = day_range(left.date_input(
        "Logical days (UTC)", value=default, min_value=first, max_value=last,
        key="quality_days"), default)
    with right:
        common.refresh_button("quality_refresh")
    data = _load(wh, key, start, end)
    gates, failing = gate_state(data["gates"]), data["failing"]
    freshness, rejects = data["freshness"], data["reject_ratio"]

    cols = st.columns(5)
    cols[0].metric("Days gated", formatting.count(gates["logical_date"].nunique()))
    cols[1].metric("Gates failed", formatting.count((~gates["is_success"]).sum()),
                   help="the newest run of each day and layer")
    cols[2].metric("Failing expectations", formatting.count(len(failing)))
    total = gates["expectations"].sum()
    cols[3].metric("Pass rate", formatting.share(
        1 - gates["expectations_failed"].sum() / total if total else None))
    stale = freshness[freshness["status"].isin(["warn", "error"])]
    cols[4].metric("Stale sources", formatting.count(len(stale)),
                   help="older than their warn_after threshold")
    st.caption(f"Logical days {start} to {end} (gates ran for {first} to {last}); read at "
               f"{common.refreshed_at()}.")

    empty = "No gate ran for these days."
    one, two = st.columns(2)
    with one:
        common.chart(charts.states(gates, "day", "layer", "result",
                                   title="Gate result per day and layer (newest run)",
                                   tooltip=["expectations:Q", "expectations_failed:Q",
                                            "run_id:N"]), gates, empty)
    with two:
        trend = pass_rate_by_day(data["gates"])
        common.chart(charts.over_time(trend, "logical_date", "pass_rate", None,
                                      title="Pass rate of the day's expectations",
                                      y_title="passed / evaluated", y_format=".1%"),
                     trend, empty)
    st.subheader("Failing expectations")
    common.table(failing, "Every expectation passed on these days.", column_config={
        "unexpected_percent": st.column_config.NumberColumn("unexpected %", format="%.3f"),
        "observed_value_number": st.column_config.NumberColumn("observed")})

    st.subheader("Sources")
    one, two = st.columns(2)
    with one:
        shown = freshness.assign(age=freshness["age_hours"].map(formatting.hours))
        common.table(shown[["source_table", "status", "age", "last_loaded_at",
                            "warn_after_hours", "error_after_hours"]],
                     "No source is known.")
        st.caption("Freshness: the age of each source's newest load, against the thresholds "
                   "of `dbt source freshness`.")
    with two:
        ratio = common.as_datetime(rejects, "date")
        common.chart(charts.with_limit(
            charts.over_time(ratio, "date", "reject_ratio", None,
                             title="Reject ratio per day of arrival",
                             y_title="dead letters / records landed", y_format=".2%"),
            settings.max_reject_ratio, "ECOM_MAX_REJECT_RATIO (raw gate)"),
            ratio, f"Nothing ingested in the last {ARRIVAL_DAYS} days.")


def render() -> None:
    common.page("Data quality", _body,
                "Great Expectations gate results, source freshness and ingestion's reject "
                "ratio, from the quality marts.")
