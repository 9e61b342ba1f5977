"""5-minute realtime windows: Spark decides which windows are open, PostgreSQL counts exactly.

The windows query reads the `processed-events` topic (valid, de-duplicated events, published
by the ingest query after each PostgreSQL commit), applies a watermark
(`ECOM_WATERMARK_MINUTES`, default 10) and groups by a 5-minute tumbling event-time window,
event_type and category in update mode. Each micro-batch hence names the (window,
event_type, category) keys that received on-time events; events older than the watermark
are dropped by Spark and update nothing (they still are in `raw.raw_events`: the daily dbt
marts count them).

Why recompute in PostgreSQL instead of taking Spark's numbers: unique users and sessions
must be exact, and Spark streaming aggregations cannot count distinct values
(`approx_count_distinct` is approximate; sets in the state store would be large). So for
the touched keys one `INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE` recomputes
events, revenue (purchases only: price x quantity), unique users and unique sessions from
`raw.raw_events`. That is exact, idempotent (replays and the at-least-once topic are
harmless), and never ahead of the raw table (events are published after they landed).
A window's row reflects every raw event of that window as of its last on-time update.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

WINDOW_MINUTES = 5
NO_CATEGORY = "(none)"
WINDOWS_QUERY = "windows"

#: Recompute the touched keys from raw.raw_events (%s: window starts, event types, categories).
#: Each touched window's rows are read once (index range scan on event_timestamp), grouped,
#: and only the touched keys are written.
UPSERT_SQL = f"""
with touched (window_start, event_type, category) as (
    select distinct * from unnest(%s::timestamptz[], %s::text[], %s::text[])
),

spans as (
    select distinct window_start from touched
),

counted as (
    select
        s.window_start,
        r.event_type,
        coalesce(r.category, '{NO_CATEGORY}') as category,
        count(*) as events,
        coalesce(sum(r.price * r.quantity) filter (where r.event_type = 'purchase'), 0)
            as revenue,
        count(distinct r.user_id) as unique_users,
        count(distinct r.session_id) as unique_sessions
    from spans as s
    inner join raw.raw_events as r
        on r.event_timestamp >= s.window_start
        and r.event_timestamp < s.window_start + interval '{WINDOW_MINUTES} minutes'
    group by s.window_start, r.event_type, coalesce(r.category, '{NO_CATEGORY}')
)

insert into raw.realtime_metrics (
    window_start, window_end, event_type, category, events, revenue, unique_users,
    unique_sessions, updated_at
)
select
    c.window_start,
    c.window_start + interval '{WINDOW_MINUTES} minutes',
    c.event_type,
    c.category,
    c.events,
    c.revenue,
    c.unique_users,
    c.unique_sessions,
    now()
from counted as c
inner join touched as t
    on c.window_start = t.window_start
    and c.event_type = t.event_type
    and c.category = t.category
on conflict (window_start, event_type, category) do update set
    window_end = excluded.window_end,
    events = excluded.events,
    revenue = excluded.revenue,
    unique_users = excluded.unique_users,
    unique_sessions = excluded.unique_sessions,
    updated_at = excluded.updated_at
"""


def window_start(ts: datetime) -> datetime:
    """Start of the 5-minute tumbling window containing ts (UTC, aligned to the epoch)."""
    ts = ts.astimezone(UTC)
    floored = ts.replace(second=0, microsecond=0)
    return floored - timedelta(minutes=floored.minute % WINDOW_MINUTES)


def category_key(category: str | None) -> str:
    return NO_CATEGORY if category is None else category


def upsert_windows(conn: Any, keys: list[tuple[datetime, str, str]]) -> int:
    """Recompute the given (window_start, event_type, category) keys; returns rows upserted."""
    if not keys:
        return 0
    starts, types, categories = (list(col) for col in zip(*keys, strict=True))
    with conn, conn.cursor() as cur:
        cur.execute(UPSERT_SQL, (starts, types, categories))
        return cur.rowcount


def window_stream(spark: Any, events: Any, watermark_minutes: int) -> Any:
    """Touched window keys of a processed-events stream (Spark: watermark + update mode).

    `events` has a binary/string `value` column with processed-event JSON.
    """
    from pyspark.sql import functions as F

    parsed = events.select(
        F.from_json(
            F.col("value").cast("string"),
            "event_type string, event_timestamp string, category string",
        ).alias("e")
    ).select(
        F.to_timestamp("e.event_timestamp").alias("event_time"),
        F.col("e.event_type").alias("event_type"),
        F.coalesce(F.col("e.category"), F.lit(NO_CATEGORY)).alias("category"),
    ).where(F.col("event_time").isNotNull() & F.col("event_type").isNotNull())
    return (
        parsed.withWatermark("event_time", f"{watermark_minutes} minutes")
        .groupBy(F.window("event_time", f"{WINDOW_MINUTES} minutes"), "event_type", "category")
        .count()
        .select(F.col("window.start").alias("window_start"), "event_type", "category")
    )
