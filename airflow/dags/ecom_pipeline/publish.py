"""Publish the logical day's `analytics.daily_aggregations` rows to `daily-aggregations`.

Each row is one JSON message keyed `<date>|<category>|<event_type>` (the mart's grain).
Idempotence is by key: a rerun or backfill re-sends the day's rows under the same keys, so
a consumer that upserts by key (or a compacted topic) holds exactly one current value per
row; the value carries `published_run_id` to tell sends apart. Kafka itself keeps every
send (at-least-once per run; a retried task may send a day twice, same keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from psycopg2.extras import RealDictCursor

from ecom.config import Settings
from ecom.db import connection
from ecom.kafka_clients import produce_json

NO_CATEGORY = "(none)"


def message_key(row: Mapping[str, Any]) -> str:
    category = row.get("category") or NO_CATEGORY
    return f"{row['date']}|{category}|{row['event_type']}"


def day_rows(settings: Settings, day: date) -> list[dict[str, Any]]:
    """The mart's rows of one day, in key order (read as the reader role)."""
    with connection(settings, "reader") as conn, \
            conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(
            """select * from analytics.daily_aggregations where date = %s
               order by category nulls first, event_type""",
            (day,),
        )
        return [dict(r) for r in cur.fetchall()]


def publish_day(settings: Settings, day: date, run_id: str) -> int:
    """Send the day's rows; return how many the broker acknowledged."""
    rows = day_rows(settings, day)
    messages = [(message_key(r), {**r, "published_run_id": run_id}) for r in rows]
    if not messages:
        return 0
    return produce_json(settings, settings.topic_daily, messages, client_id="ecom-airflow")
