"""The warehouse exporter: a custom collector that queries PostgreSQL when scraped.

Why query on scrape (cached for a few seconds) rather than poll in a thread: the figures
are as fresh as the scrape that reads them, nothing runs while nobody scrapes, and two
Prometheus servers scraping at once cost one round of queries. Every query is small (an
index's edge, a window of days, the statistics views): `statement_timeout` of the monitor
role bounds them anyway. A query that fails leaves its metrics out and sets
`ecom_exporter_query_ok{query} 0`; PostgreSQL down leaves `ecom_pg_up 0` only.

Reading as the `monitor` role (migration 0040): `ops` tables, the `ops.source_freshness`
and `ops.top_statements` views, and the server's statistics (pg_monitor); never `raw` rows
nor `analytics` rows (mart sizes come from the statistics collector's live-row estimates).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

import psycopg2
from ecom_pipeline import DAG_ID
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError
from ecom.kafka_admin import describe

log = logging.getLogger(__name__)

GATE_DAYS = 7  # gates run in the last GATE_DAYS days, by layer and logical day (bounded)
TOP_STATEMENTS = 10
REJECT_WINDOWS = {"1h": "1 hour", "24h": "24 hours"}
STATES = ("success", "failed", "running")

QUERIES: dict[str, str] = {
    "gates": f"""
        with runs as (
            select run_id, layer, logical_date, min(run_started_at) as started_at,
                   count(*) as expectations, count(*) filter (where not success) as failed
              from ops.data_quality_logs
             where run_started_at >= now() - interval '{GATE_DAYS} days'
             group by run_id, layer, logical_date
        )
        select distinct on (layer, logical_date)
               layer, logical_date, failed, expectations, started_at
          from runs
         order by layer, logical_date, started_at desc""",
    "freshness": "select source, loaded_at, newest_event_at from ops.source_freshness",
    "reject_ratio": """
        select w.label, coalesce(sum(b.rows_rejected), 0),
               coalesce(sum(b.rows_valid + b.rows_rejected), 0)
          from (values {windows}) as w (label, span)
          left join ops.ingest_batches as b on b.committed_at >= now() - w.span::interval
         group by w.label""".replace("{windows}", ", ".join(
        f"('{label}', '{span}')" for label, span in REJECT_WINDOWS.items())),
    "pipeline": """
        with last_run as (
            select run_id from ops.pipeline_execution_logs
             where dag_id = %(dag_id)s order by log_id desc limit 1
        ), tasks as (
            select distinct on (task_id) task_id, status, started_at, ended_at, logical_date
              from ops.pipeline_execution_logs
             where dag_id = %(dag_id)s and run_id = (select run_id from last_run)
             order by task_id, log_id desc
        )
        select min(logical_date), min(started_at), max(ended_at),
               count(*) filter (where status = 'failed'),
               count(*) filter (where status in ('running', 'up_for_retry')),
               coalesce(bool_or(task_id = 'report' and status = 'success'), false),
               count(*)
          from tasks""",
    "pipeline_success": """
        select max(logical_date), max(reported_at) from ops.pipeline_run_reports
         where dag_id = %(dag_id)s and status = 'success'""",
    "marts": """
        select relname, n_live_tup from pg_stat_user_tables
         where schemaname = 'analytics' order by relname""",
    "database": """
        select pg_database_size(current_database()),
               (select count(*) filter (where state = 'active') from pg_stat_activity
                 where datname = current_database()),
               (select count(*) from pg_stat_activity where datname = current_database())""",
    "statements": f"""
        select queryid::text, coalesce(role_name, '?'), calls, total_exec_seconds,
               mean_exec_seconds, rows, query
          from ops.top_statements limit {TOP_STATEMENTS}""",
    "notifications": """
        select kind, status, count(*) from ops.notifications
         where last_seen_at >= now() - interval '24 hours' group by kind, status""",
}


@dataclass
class Readings:
    """What one round of queries returned (`rows[name]`), or why a query failed."""

    pg_up: bool = False
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    kafka_topics: dict[str, int] | None = None


def _ts(value: datetime | date | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.combine(value, dtime(0), tzinfo=UTC).timestamp()


def _gauge(name: str, help_text: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, labels=labels)


def warehouse_families(r: Readings, settings: Settings, now: float) -> list[Metric]:
    """The metric families of one round of readings (pure: unit-tested)."""
    out: list[Metric] = [
        GaugeMetricFamily("ecom_pg_up", "1 if the exporter could query PostgreSQL",
                          value=int(r.pg_up)),
        GaugeMetricFamily("ecom_config_freshness_threshold_seconds",
                          "ECOM_FRESHNESS_HOURS, as the alert rules' threshold",
                          value=settings.freshness_hours * 3600),
        GaugeMetricFamily("ecom_config_reject_ratio_threshold",
                          "ECOM_MAX_REJECT_RATIO, as the alert rules' threshold",
                          value=settings.max_reject_ratio),
        GaugeMetricFamily("ecom_config_pipeline_deadline_seconds",
                          "ECOM_PIPELINE_DEADLINE_MINUTES, as the alert rules' threshold",
                          value=settings.pipeline_deadline_minutes * 60),
    ]
    ok = _gauge("ecom_exporter_query_ok", "1 if the exporter's query succeeded", ["query"])
    for name in QUERIES:
        if r.pg_up:
            ok.add_metric([name], 0 if name in r.failed else 1)
    out.append(ok)
    kafka = GaugeMetricFamily("ecom_kafka_up", "1 if the broker answered a metadata request",
                              value=0 if r.kafka_topics is None else 1)
    partitions = _gauge("ecom_kafka_topic_partitions", "Partitions of each topic", ["topic"])
    for topic, count in sorted((r.kafka_topics or {}).items()):
        partitions.add_metric([topic], count)
    out += [kafka, partitions]
    rows = r.rows
    out += _gate_families(rows.get("gates"))
    out += _freshness_families(rows.get("freshness"), now)
    ratio = _gauge("ecom_reject_ratio",
                   "Dead letters / records landed by ingestion over the window", ["window"])
    records = _gauge("ecom_ingested_records", "Records landed (valid + dead letters) over "
                     "the window", ["window"])
    for label, rejected, total in rows.get("reject_ratio") or []:
        records.add_metric([label], total)
        if total:
            ratio.add_metric([label], rejected / total)
    out += [ratio, records]
    out += _pipeline_families(rows.get("pipeline"), rows.get("pipeline_success"), now)
    marts = _gauge("ecom_mart_rows", "Live rows of each analytics mart (PostgreSQL's "
                   "statistics estimate)", ["mart"])
    for mart, count in rows.get("marts") or []:
        marts.add_metric([mart], count)
    out.append(marts)
    out += _database_families(rows.get("database"), rows.get("statements"),
                              r.failed.get("statements"))
    notes = _gauge("ecom_notifications", "Webhook notifications seen in the last 24 h, by "
                   "kind and delivery status", ["kind", "status"])
    for kind, status, count in rows.get("notifications") or []:
        notes.add_metric([kind, status], count)
    out.append(notes)
    return out


def _gate_families(rows: list[tuple[Any, ...]] | None) -> list[Metric]:
    success = _gauge("ecom_quality_gate_success",
                     f"1 if the latest run of the layer's gate for the logical day passed "
                     f"(gates run in the last {GATE_DAYS} days)", ["layer", "logical_date"])
    failed = _gauge("ecom_quality_gate_failed_expectations",
                    "Failed expectations of that run", ["layer", "logical_date"])
    last = _gauge("ecom_quality_gate_last_run_timestamp_seconds",
                  "When the layer's gate last ran (Unix time)", ["layer"])
    newest: dict[str, float] = {}
    for layer, day, n_failed, _, started in rows or []:
        labels = [layer, day.isoformat()]
        success.add_metric(labels, 0 if n_failed else 1)
        failed.add_metric(labels, n_failed)
        newest[layer] = max(newest.get(layer, 0.0), _ts(started) or 0.0)
    for layer, at in sorted(newest.items()):
        last.add_metric([layer], at)
    return [success, failed, last]


def _freshness_families(rows: list[tuple[Any, ...]] | None, now: float) -> list[Metric]:
    loaded = _gauge("ecom_source_loaded_timestamp_seconds",
                    "When the source table last received a row (Unix time)", ["source"])
    age = _gauge("ecom_source_freshness_seconds",
                 "Now minus when the source table last received a row", ["source"])
    newest = _gauge("ecom_source_newest_event_timestamp_seconds",
                    "Event time of the source's newest event (Unix time)", ["source"])
    for source, loaded_at, newest_at in rows or []:
        if (at := _ts(loaded_at)) is not None:
            loaded.add_metric([source], at)
            age.add_metric([source], max(0.0, now - at))
        if (at := _ts(newest_at)) is not None:
            newest.add_metric([source], at)
    return [loaded, age, newest]


def pipeline_state(failed: int, running: int, reported: bool) -> str:
    """The last run's state from its tasks' latest attempts."""
    if failed:
        return "failed"
    if reported:
        return "success"
    return "running"


def _pipeline_families(last: list[tuple[Any, ...]] | None,
                       success: list[tuple[Any, ...]] | None, now: float) -> list[Metric]:
    state = _gauge("ecom_pipeline_last_run_state",
                   "1 for the state of the daily DAG's last run (success, failed, running)",
                   ["state"])
    out: list[Metric] = [state]
    if last and last[0][-1]:  # the last run has logged tasks
        day, started, ended, failed, running, reported, _ = last[0]
        current = pipeline_state(failed, running, reported)
        for name in STATES:
            state.add_metric([name], int(name == current))
        start = _ts(started)
        end = _ts(ended) if current != "running" else now
        out += [
            GaugeMetricFamily("ecom_pipeline_last_run_logical_date_timestamp_seconds",
                              "Logical day of the last run, 00:00 UTC (Unix time)",
                              value=_ts(day) or 0),
            GaugeMetricFamily("ecom_pipeline_last_run_start_timestamp_seconds",
                              "When the last run's first task started (Unix time)",
                              value=start or 0),
        ]
        if start is not None and end is not None:
            out.append(GaugeMetricFamily(
                "ecom_pipeline_last_run_duration_seconds",
                "The last run's duration (so far, while it runs)", value=max(0.0, end - start)))
    if success and success[0][0] is not None:
        day, reported_at = success[0]
        out += [
            GaugeMetricFamily("ecom_pipeline_last_success_logical_date_timestamp_seconds",
                              "Newest logical day a run completed (00:00 UTC, Unix time)",
                              value=_ts(day) or 0),
            GaugeMetricFamily("ecom_pipeline_last_success_timestamp_seconds",
                              "When a run last completed (Unix time)",
                              value=_ts(reported_at) or 0),
        ]
    return out


def _database_families(database: list[tuple[Any, ...]] | None,
                       statements: list[tuple[Any, ...]] | None,
                       statements_error: str | None) -> list[Metric]:
    out: list[Metric] = []
    if database:
        size, active, total = database[0]
        out.append(GaugeMetricFamily("ecom_pg_database_size_bytes",
                                     "Size of the warehouse database", value=size))
        connections = _gauge("ecom_pg_connections", "Connections to the warehouse database",
                             ["state"])
        connections.add_metric(["active"], active)
        connections.add_metric(["idle"], total - active)
        out.append(connections)
    out.append(GaugeMetricFamily(
        "ecom_pg_stat_statements_available",
        "1 if pg_stat_statements is installed and loaded (ops.top_statements answers)",
        value=0 if statements_error or statements is None else 1))
    labels = ["queryid", "role"]
    seconds = _gauge("ecom_pg_top_statement_exec_seconds",
                     f"Total execution time of the {TOP_STATEMENTS} busiest statements since "
                     "the statistics were reset", labels)
    calls = _gauge("ecom_pg_top_statement_calls", "Calls of those statements", labels)
    mean = _gauge("ecom_pg_top_statement_mean_seconds", "Mean execution time of each", labels)
    info = _gauge("ecom_pg_top_statement_info", "The statement's text (normalised, cut)",
                  [*labels, "query"])
    for queryid, role, n_calls, total_s, mean_s, _, query in statements or []:
        key = [queryid, role]
        seconds.add_metric(key, total_s)
        calls.add_metric(key, n_calls)
        mean.add_metric(key, mean_s)
        info.add_metric([*key, " ".join(str(query).split())[:160]], 1)
    return [*out, seconds, calls, mean, info]


class WarehouseCollector(Collector):
    """Runs QUERIES (cached for `cache_seconds`) and builds the families when scraped."""

    def __init__(self, settings: Settings, *, cache_seconds: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._conn: Any = None
        self._cached: tuple[float, list[Metric]] | None = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings, "monitor", autocommit=True)
        return self._conn

    def read(self) -> Readings:
        readings = Readings()
        try:
            conn = self._connection()
        except UserError as exc:
            log.warning("warehouse not reachable: %s", exc)
            return self._read_kafka(readings)
        readings.pg_up = True
        for name, sql in QUERIES.items():
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, {"dag_id": DAG_ID})
                    readings.rows[name] = cur.fetchall()
            except psycopg2.OperationalError as exc:  # the server went away mid-scrape
                readings.pg_up = False
                readings.failed[name] = str(exc).strip()
                conn.close()
                break
            except psycopg2.Error as exc:
                readings.failed[name] = str(exc).strip().splitlines()[0]
                log.warning("query %s failed: %s", name, readings.failed[name])
        return self._read_kafka(readings)

    def _read_kafka(self, readings: Readings) -> Readings:
        try:
            readings.kafka_topics = describe(self.settings)
        except Exception as exc:  # any broker trouble reads as "down", never as a failed scrape
            log.warning("broker not reachable: %s", exc)
        return readings

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                started = time.perf_counter()
                families = warehouse_families(self.read(), self.settings, now)
                families.append(GaugeMetricFamily(
                    "ecom_exporter_scrape_duration_seconds",
                    "How long the exporter's queries took", value=time.perf_counter() - started))
                self._cached = (now, families)
            yield from self._cached[1]

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()


def exporter_registry(settings: Settings, cache_seconds: float = 10.0
                      ) -> tuple[CollectorRegistry, WarehouseCollector]:
    registry = CollectorRegistry()
    collector = WarehouseCollector(settings, cache_seconds=cache_seconds)
    registry.register(collector)
    return registry, collector
