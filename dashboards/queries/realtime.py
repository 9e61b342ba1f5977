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
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from dashboards.warehouse import Query, Warehouse

WINDOW = timedelta(minutes=5)

#: one head row (where the newest window starts, now, where the shown hours end, the
#: newest update), then rows per (window, event type), per (window, category), per (event
#: type, category). Times as epoch seconds: a DataFrame takes numbers several times
#: faster than Python datetimes, and the page draws a day of windows (~4,000 rows).
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
head as (
    select
        'head' as part, null::bigint as window_epoch, null as key, null as category,
        null::bigint as events, null::numeric as revenue,
        extract(epoch from shown.newest_start) as newest_epoch,
        extract(epoch from shown.db_now) as now_epoch,
        extract(epoch from shown.until) as until_epoch,
        (select extract(epoch from max(updated_at)) from windows) as updated_epoch
    from shown
)
select * from head
union all
select
    'type', extract(epoch from window_start)::bigint, event_type, null,
    sum(events)::bigint, sum(revenue), null, null, null, null
from windows
group by window_start, event_type
union all
select
    'category', extract(epoch from window_start)::bigint, category, null,
    sum(events)::bigint, sum(revenue), null, null, null, null
from windows
where event_type = 'purchase'
group by window_start, category
union all
select
    'total', null, event_type, category, sum(events)::bigint, sum(revenue),
    null, null, null, null
from windows
group by event_type, category
order by part, events desc, key, category
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


def _part(rows: list[tuple[Any, ...]], key: str) -> pd.DataFrame:
    """(window epoch, key, events, revenue) rows as window_start, window_end, `key`,
    events, revenue."""
    epochs, keys, events, revenue = (list(c) for c in zip(*rows, strict=True)) if rows \
        else ([], [], [], [])
    starts = pd.to_datetime(pd.Series(epochs, dtype="int64"), unit="s", utc=True)
    return pd.DataFrame({"window_start": starts, "window_end": starts + WINDOW,
                         key: pd.Series(keys, dtype=object),
                         "events": pd.Series(events, dtype="int64"),
                         "revenue": pd.Series(revenue, dtype="float64")})


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def load(wh: Warehouse, hours: int) -> Realtime:
    """The shown hours. Rows are split and framed by hand, not through a generic
    DataFrame: the page refreshes every few seconds over up to a day of windows."""
    _, rows = wh.rows(WINDOWS, {"hours": hours})
    head = next(r for r in rows if r[0] == "head")
    by_type = [(r[1], r[2], r[4], r[5]) for r in rows if r[0] == "type"]
    by_category = [(r[1], r[2], r[4], r[5]) for r in rows if r[0] == "category"]
    totals = [(r[2], r[3], r[4], r[5]) for r in rows if r[0] == "total"]  # sorted in SQL
    newest = _time(head[6])
    return Realtime(
        None if newest is None else newest + WINDOW, _time(head[9]),
        _time(head[7]), _time(head[8]),  # type: ignore[arg-type]
        _part(by_type, "event_type"), _part(by_category, "category"),
        pd.DataFrame(totals, columns=["event_type", "category", "events", "revenue"]
                     ).astype({"events": "int64", "revenue": "float64"}))
