"""Realtime page: the stream's 5-minute windows of the last hours, and how old the newest is.

A refresh is one statement on `realtime_windows`' primary key (window_start first): where
the newest window is, which hours to show, and those hours summed per window and event
type, per window and category (purchases), and per event type and category. One round
trip and one DataFrame per refresh, however many people watch: the page refreshes every
few seconds.

The hours end now while the stream is live; when the newest window is older than that,
they end at the newest window instead (the page says so), so a stopped stream still shows
its last hours.

The mart is a view starting with import CTEs, which PostgreSQL plans apart from the query
reading it: a bare max() through it scans every window, so the newest is looked for in
bounded ranges first, which reach the key's index (as do the shown hours' bounds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from dashboards.warehouse import Query, Warehouse

WINDOW = timedelta(minutes=5)

#: parts of the result: rows per (window, event type), per (window, category), per
#: (event type, category); window starts as epoch seconds (DataFrames take them far faster
#: than Python datetimes)
WINDOWS = Query("windows", """
with newest as materialized (
    select
        coalesce(
            (select max(window_start) from analytics.realtime_windows
             where window_start > now() - interval '1 hour'),
            (select max(window_start) from analytics.realtime_windows
             where window_start > now() - interval '2 days'),
            (select max(window_start) from analytics.realtime_windows)
        ) as window_start,
        now() as db_now
),
shown as materialized (
    select
        newest.window_start as newest_start,
        newest.db_now,
        case
            when newest.window_start is null
                or newest.window_start > newest.db_now - %(hours)s * interval '1 hour'
                then newest.db_now
            else newest.window_start
        end as until
    from newest
),
windows as (
    select *
    from analytics.realtime_windows
    where window_start > (select until from shown) - %(hours)s * interval '1 hour'
        and window_start <= (select until from shown)
),
parts as (
    select
        'type' as part, extract(epoch from window_start)::bigint as window_epoch,
        event_type as key, null as category, sum(events)::bigint as events,
        sum(revenue) as revenue, max(updated_at) as updated_at
    from windows
    group by window_start, event_type
    union all
    select
        'category', extract(epoch from window_start)::bigint, category, null,
        sum(events)::bigint, sum(revenue), max(updated_at)
    from windows
    where event_type = 'purchase'
    group by window_start, category
    union all
    select
        'total', null, event_type, category, sum(events)::bigint, sum(revenue),
        max(updated_at)
    from windows
    group by event_type, category
)
select shown.newest_start, shown.db_now, shown.until, parts.*
from shown
left join parts on true
""")

QUERIES = (WINDOWS,)


@dataclass(frozen=True)
class Realtime:
    newest_window_end: datetime | None
    last_update: datetime | None
    now: datetime
    until: datetime
    by_type: pd.DataFrame
    by_category: pd.DataFrame
    totals: pd.DataFrame

    @property
    def live(self) -> bool:
        """Whether the shown hours end now (else at an older newest window)."""
        return self.until >= self.now - WINDOW

    @property
    def age(self) -> timedelta | None:
        """How old the newest window is: now minus its end."""
        if self.newest_window_end is None:
            return None
        return max(self.now - self.newest_window_end, timedelta(0))


def _part(rows: pd.DataFrame, part: str, key: str) -> pd.DataFrame:
    found = rows[rows["part"] == part].drop(columns=["category"]).rename(columns={"key": key})
    out = found[[key, "events", "revenue"]].reset_index(drop=True)
    out.insert(0, "window_start", pd.to_datetime(found["window_epoch"].to_numpy(), unit="s",
                                                 utc=True))
    out.insert(1, "window_end", out["window_start"] + WINDOW)
    return out


def load(wh: Warehouse, hours: int) -> Realtime:
    rows = wh.frame(WINDOWS, {"hours": hours})
    first = rows.iloc[0]
    newest = None if pd.isna(first["newest_start"]) else first["newest_start"].to_pydatetime()
    totals = rows[rows["part"] == "total"].rename(columns={"key": "event_type"})
    totals = totals[["event_type", "category", "events", "revenue"]].sort_values(
        ["events", "event_type", "category"], ascending=[False, True, True])
    updated = rows["updated_at"].max() if rows["part"].notna().any() else None
    return Realtime(
        None if newest is None else newest + WINDOW,
        None if updated is None or pd.isna(updated) else updated.to_pydatetime(),
        first["db_now"].to_pydatetime(), first["until"].to_pydatetime(),
        _part(rows, "type", "event_type"), _part(rows, "category", "category"),
        totals.reset_index(drop=True))
