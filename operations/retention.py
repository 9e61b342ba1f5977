"""Deleting what is past its retention: ops logs, realtime windows, date-grained marts.

Marts belong to dbt, so pruning one must hold across dbt's runs: an incremental run
rebuilds only the days whose upstream changed (macros/incremental), so it never brings
a pruned day back - except a day that gains a late event, which is rebuilt whole from
the intermediate tables and pruned again by the next run. A full refresh rebuilds from
raw, which holds only the days not yet archived: restore the archived days first
(`ecom archive restore --date D`). The days pruned are recorded in `ops.pruned_days`
(layer 'marts'): the reconciliation tests compare the marts day by day only after that
edge, where every mart holds whole days.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ecom.config import Settings
from ecom.db import connect


@dataclass(frozen=True)
class Rule:
    """Rows `t` of `relation` matching `predicate` go. Parameters: %(day)s, the first day
    kept, and %(midnight)s, its start in UTC. `date_column`: the mart's day, recorded in
    ops.pruned_days."""

    group: str  # ops_logs | realtime | marts
    relation: str
    predicate: str
    date_column: str = ""


def _older(column: str) -> str:
    return f"t.{column} < %(midnight)s"


#: ops tables by their time column. The ingest ledger keeps each query's newest batch: a
#: restarted stream re-runs its last batch and must find it (ingestion/sink.py).
OPS_LOGS = (
    Rule("ops_logs", "ops.data_quality_logs", _older("logged_at")),
    Rule("ops_logs", "ops.pipeline_execution_logs", _older("logged_at")),
    Rule("ops_logs", "ops.pipeline_run_reports", _older("reported_at")),
    Rule("ops_logs", "ops.maintenance_actions", _older("logged_at")),
    Rule("ops_logs", "ops.ingest_batches",
         _older("committed_at") + " and t.batch_id < (select max(n.batch_id) from "
         "ops.ingest_batches n where n.query_name = t.query_name)"),
)
REALTIME = (Rule("realtime", "raw.realtime_metrics", _older("window_start")),)
#: Every dbt model partitioned by a date (customer_rfm_segments and product_pairs are
#: tables rebuilt from int_purchase_lines at each run: they follow). Event- and
#: session-grained models lose whole sessions (those that began before the cutoff), so
#: their totals keep agreeing; the daily ones lose whole days. The cutoff day itself then
#: differs between the two (it lost the events of sessions begun the day before): it is
#: recorded as pruned too. Purchase lines go first: they find their sessions' starts in
#: the sessionised events.
MARTS = (
    Rule("marts", "analytics_intermediate.int_purchase_lines",
         "exists (select from analytics_intermediate.int_events_sessionized e where "
         "e.event_id = t.event_id and e.session_started_at < %(midnight)s)"),
    Rule("marts", "analytics_intermediate.int_events_sessionized",
         _older("session_started_at")),
    Rule("marts", "analytics.processed_events", _older("session_started_at")),
    Rule("marts", "analytics.user_sessions", _older("session_started_at")),
    Rule("marts", "analytics.daily_aggregations", "t.date < %(day)s", date_column="date"),
    Rule("marts", "analytics.product_analytics", "t.event_date < %(day)s",
         date_column="event_date"),
)


def retention_days(settings: Settings, group: str) -> int:
    return {"ops_logs": settings.ops_log_retention_days,
            "realtime": settings.realtime_retention_days,
            "marts": settings.mart_retention_days}[group]


def cutoff(settings: Settings, group: str, as_of: date) -> date:
    """The first day kept: rows dated before it go."""
    return as_of - timedelta(days=retention_days(settings, group))


def rules(groups: tuple[str, ...] = ("ops_logs", "realtime", "marts")) -> Iterator[Rule]:
    for rule in (*OPS_LOGS, *REALTIME, *MARTS):
        if rule.group in groups:
            yield rule


@dataclass(frozen=True)
class Pruned:
    rule: Rule
    cutoff: date
    rows: int
    bytes: int  # the deleted rows' size in PostgreSQL (before vacuum reclaims it)
    exists: bool = True


def prune(settings: Settings, rule: Rule, as_of: date, *, dry_run: bool = False) -> Pruned:
    """Delete (or, dry, count) the rows of one relation past its retention."""
    day = cutoff(settings, rule.group, as_of)
    params = {"day": day, "midnight": datetime.combine(day, time.min, UTC)}
    conn = connect(settings, "admin")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select to_regclass(%s)", (rule.relation,))
            if cur.fetchone()[0] is None:
                return Pruned(rule, day, 0, 0, exists=False)
            if dry_run:
                cur.execute(f"select count(*), coalesce(sum(pg_column_size(t.*)), 0) "
                            f"from {rule.relation} t where {rule.predicate}", params)
                rows, size = cur.fetchone()
                return Pruned(rule, day, int(rows), int(size))
            day_expr = f"t.{rule.date_column}" if rule.date_column else "null::date"
            cur.execute(f"with gone as (delete from {rule.relation} t where {rule.predicate} "
                        f"returning pg_column_size(t.*) as size, {day_expr} as day) "
                        "select count(*), coalesce(sum(size), 0), "
                        "array_agg(distinct day) filter (where day is not null) from gone",
                        params)
            rows, size, days = cur.fetchone()
            if rule.group == "marts" and rows:
                _record_pruned_days(cur, [*(days or []), day])
            return Pruned(rule, day, int(rows), int(size))
    finally:
        conn.close()


def _record_pruned_days(cur: Any, days: list[date]) -> None:
    cur.executemany("insert into ops.pruned_days (layer, day) values ('marts', %s) "
                    "on conflict do nothing", [(d,) for d in days])
