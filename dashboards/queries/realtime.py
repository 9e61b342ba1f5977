"""Realtime page: the stream's 5-minute windows of the last hours, and how old the newest is.

Two statements per refresh, both on `realtime_windows`' primary key (window_start first):
where the newest window is, then the windows of the chosen hours up to it. The hours end
now while the stream is live; when the newest window is older than that, they end at the
newest window instead (the page says so), so a stopped stream still shows its last hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from dashboards.warehouse import Query, Warehouse

NEWEST = Query("newest", """
with newest as (
    select max(window_start) as window_start
    from analytics.realtime_windows
)
select
    newest.window_start as newest_window_start,
    newest.window_start + interval '5 minutes' as newest_window_end,
    (
        select max(updated_at)
        from analytics.realtime_windows
        where window_start >= newest.window_start - interval '1 hour'
    ) as last_update,
    now() as db_now
from newest
""")

WINDOWS = Query("windows", """
select
    window_start,
    event_type,
    category,
    events,
    revenue,
    unique_users,
    unique_sessions
from analytics.realtime_windows
where window_start > %(until)s - %(hours)s * interval '1 hour'
    and window_start <= %(until)s
order by window_start, event_type, category
""")

QUERIES = (NEWEST, WINDOWS)


@dataclass(frozen=True)
class Realtime:
    newest_window_end: datetime | None
    last_update: datetime | None
    now: datetime
    until: datetime
    windows: pd.DataFrame

    @property
    def live(self) -> bool:
        """Whether the shown hours end now (else at an older newest window)."""
        return self.until >= self.now - timedelta(minutes=5)

    @property
    def age(self) -> timedelta | None:
        """How old the newest window is: now minus its end."""
        if self.newest_window_end is None:
            return None
        return max(self.now - self.newest_window_end, timedelta(0))


def until(newest_window_start: datetime | None, now: datetime, hours: int) -> datetime:
    """The end of the shown hours: now, unless the newest window is older than them."""
    if newest_window_start is None or newest_window_start > now - timedelta(hours=hours):
        return now
    return newest_window_start


def load(wh: Warehouse, hours: int) -> Realtime:
    row = wh.frame(NEWEST).iloc[0]
    now = row["db_now"].to_pydatetime()
    newest = None if pd.isna(row["newest_window_start"]) else \
        row["newest_window_start"].to_pydatetime()
    end = until(newest, now, hours)
    params: dict[str, Any] = {"until": end, "hours": hours}
    windows = wh.frame(WINDOWS, params)
    return Realtime(
        None if newest is None else row["newest_window_end"].to_pydatetime(),
        None if pd.isna(row["last_update"]) else row["last_update"].to_pydatetime(),
        now, end, windows)
