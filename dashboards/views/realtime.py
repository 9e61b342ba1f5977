"""Realtime page: the last hours of 5-minute windows, refreshing itself every few seconds.

Only the fragment below reruns on each refresh, and its two queries are on the windows'
primary key: the business page's queries never run from here."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboards import charts, formatting
from dashboards.queries import realtime as q
from dashboards.views import common
from dashboards.warehouse import Warehouse
from ecom.config import Settings

HOURS = (1, 3, 6, 12, 24)
REFRESH = {"every 5 s": 5, "every 15 s": 15, "every 60 s": 60, "off": None}
STALE_AFTER = timedelta(minutes=15)


@st.cache_data(ttl=2, show_spinner=False)
def _load(_wh: Warehouse, key: str, hours: int) -> q.Realtime:
    """Shared by every viewer for 2 s: refreshing tabs cost one read per refresh."""
    return q.load(_wh, hours)


def _body(settings: Settings) -> None:
    wh, key = common.warehouse(settings), common.cache_key(settings)
    left, middle, _ = st.columns([1, 1, 3])
    hours = left.selectbox("Hours shown", HOURS, index=1, key="realtime_hours",
                           format_func=lambda h: f"last {h} h")
    refresh = REFRESH[middle.selectbox("Refresh", list(REFRESH), key="realtime_refresh")]

    @st.fragment(run_every=refresh)
    def live() -> None:
        common.guarded(lambda: _draw(_load(wh, key, hours), hours, refresh), "realtime")

    live()


def _draw(data: q.Realtime, hours: int, refresh: int | None) -> None:
    if data.newest_window_end is None:
        st.info("No realtime windows yet: run `make demo`, or `ecom ingest stream` while "
                "`ecom simulate live` sends events.")
        return
    age = data.age
    by_type, by_category = data.by_type, data.by_category
    last_hour = by_type[by_type["window_start"] > pd.Timestamp(data.until - timedelta(hours=1))]
    newest = by_type[by_type["window_start"] == by_type["window_start"].max()]
    cols = st.columns(4)
    cols[0].metric("Newest window ends", data.newest_window_end.strftime("%H:%M UTC"),
                   help=f"{data.newest_window_end:%Y-%m-%d %H:%M} UTC")
    cols[1].metric("Age of the newest window", formatting.age(age),
                   help="now minus the end of the newest 5-minute window")
    cols[2].metric("Events, last hour shown", formatting.count(last_hour["events"].sum()))
    cols[3].metric("Revenue, last hour shown", formatting.money(last_hour["revenue"].sum()))
    if not data.live:
        st.warning(f"The newest window is {formatting.age(age)} old: the stream is not "
                   f"running (or no events arrive). Showing the {hours} h up to it.")
    elif age is not None and age > STALE_AFTER:
        st.warning(f"No window for {formatting.age(age)}: is `ecom ingest stream` running?")
    every = f"every {refresh} s" if refresh else "on demand"
    updated = f"{data.last_update:%H:%M:%S} UTC" if data.last_update else "-"
    st.caption(f"The newest window holds {formatting.count(newest['events'].sum())} events; "
               f"the stream last updated a window at {updated}. Refreshes {every}; read at "
               f"{common.refreshed_at()}.")
    empty = f"No window in the {hours} h shown."
    one, two = st.columns(2)
    with one:
        common.chart(charts.windows(by_type, "window_start", "window_end", "events",
                                    "event_type", title="Events per 5-minute window by type",
                                    y_title="events"), by_type, empty)
    with two:
        common.chart(charts.windows(by_category, "window_start", "window_end", "revenue",
                                    "category", title="Revenue per 5-minute window by "
                                    "category", y_title="revenue", y_format=",.2f"),
                     by_category, "No purchase in the hours shown.")
    common.table(data.totals, empty, column_config={
        "revenue": st.column_config.NumberColumn(format="%.2f")})


def render() -> None:
    common.page("Realtime", _body,
                "5-minute event-time windows kept by the streaming job (exact counts), read "
                "live from analytics.realtime_windows.")
