"""Prometheus metrics of the streaming job, served from its own process (`/metrics`).

What a person watching the stream needs: rows read, landed and rejected (by reason),
micro-batches and their durations, the time of the last committed batch, the event time
of the newest event landed and the windows' watermark (both also as ages), and the
consumer lag per partition.

Cost (`bench/ingest.py --metrics-pairs`: <= 2% of throughput): per committed batch a
handful of counter increments and one pass over the landed events for the newest event
time; per progress event a few gauges. Everything else happens when Prometheus scrapes, on
the HTTP server's thread: the lag is the broker's log end (one probe per partition, cached
for `LAG_CACHE_S`) minus the offsets the last batch read up to. So a stalled job shows its
lag growing even though it reports nothing, and a dead one stops answering (`up == 0`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ecom.config import Settings
from ecom.events import RejectReason
from ecom.metrics_http import MetricsServer, serve_registry
from ecom.ports import port_answers
from ingestion.kafka_client import KafkaClient, settings_client
from ingestion.progress import progress_offsets
from ingestion.sink import BatchResult

LAG_CACHE_S = 2.0
#: micro-batch durations: a trigger is 1 s, a full backlog batch ~5 s
BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)
QUERIES = ("events", "windows")


def parse_spark_time(text: str | None) -> float | None:
    """Spark's progress timestamps (`2026-03-01T12:00:00.000Z`) as epoch seconds."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _ScrapeTime(Collector):
    """What is computed when scraped: lag per partition (broker probe) and ages."""

    def __init__(self, metrics: StreamMetrics) -> None:
        self.m = metrics
        self._lock = threading.Lock()
        self._client: KafkaClient | None = None
        self._cached: tuple[float, tuple[dict[int, int], dict[int, int]] | None] = (0.0, None)

    def _broker_answers(self) -> bool:
        """A quick TCP check first: a probe of a dead broker would hang the scrape."""
        for server in self.m.settings.kafka_bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            if port.isdigit() and port_answers(host or "127.0.0.1", int(port), timeout=0.5):
                return True
        return False

    def _offsets(self) -> tuple[dict[int, int], dict[int, int]] | None:
        """({partition: log end}, {partition: log start}) of the events topic, None when
        the broker does not answer. Cached for LAG_CACHE_S."""
        with self._lock:
            at, found = self._cached
            if time.monotonic() - at < LAG_CACHE_S:
                return found
            settings = self.m.settings
            found = None
            if self._broker_answers():
                try:
                    if self._client is None:
                        self._client = settings_client(settings)
                    topic = settings.topic_events
                    partitions = self._client.partitions(topic)
                    unknown = [p for p in partitions if p not in self.m.positions]
                    found = (self._client.log_ends(topic, partitions),
                             self._client.log_starts(topic, unknown) if unknown else {})
                except Exception:  # the scrape reports the broker down; the job runs on
                    self.close_client()
            self._cached = (time.monotonic(), found)
            return found

    def close_client(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        m = self.m
        topic = m.settings.topic_events
        found = self._offsets()
        yield GaugeMetricFamily("ecom_ingest_kafka_up",
                                "1 if the broker answered the lag probe of this scrape",
                                value=0 if found is None else 1)
        lag = GaugeMetricFamily(
            "ecom_ingest_consumer_lag_records",
            "Records in the events topic's log beyond what the stream has read, per partition",
            labels=["topic", "partition"])
        if found is not None:
            ends, starts = found
            positions = {**starts, **m.positions}  # before its first batch: the log start
            for partition, end in sorted(ends.items()):
                lag.add_metric([topic, str(partition)],
                               max(0, end - positions.get(partition, 0)))
        yield lag
        now = m.clock()
        for name, help_text, at in (
                ("ecom_ingest_newest_event_age_seconds",
                 "Now minus the event time of the newest event landed (freshness)",
                 m.newest_event_at),
                ("ecom_ingest_watermark_delay_seconds",
                 "Now minus the realtime windows' watermark", m.watermark_at)):
            family = GaugeMetricFamily(name, help_text)
            if at is not None:
                family.add_metric([], max(0.0, now - at))
            yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name in ("ecom_ingest_kafka_up", "ecom_ingest_newest_event_age_seconds",
                     "ecom_ingest_watermark_delay_seconds"):
            yield GaugeMetricFamily(name, name)
        yield GaugeMetricFamily("ecom_ingest_consumer_lag_records", "lag",
                                labels=["topic", "partition"])


class StreamMetrics:
    """The stream's registry; `IngestJob` calls `landed` per batch and `progress` per
    progress event (from its StreamingQueryListener)."""

    def __init__(self, settings: Settings, *, positions: Mapping[str, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.registry = CollectorRegistry()
        r = self.registry
        self.rows_read = Counter("ecom_ingest_rows_read", "Kafka records the events query read",
                                 registry=r)
        self.rows_landed = Counter("ecom_ingest_rows_landed",
                                   "New valid events written to raw.raw_events", registry=r)
        self.rows_rejected = Counter(
            "ecom_ingest_rows_rejected",
            "New dead letters written to raw.rejected_events, by reason code", ["reason"],
            registry=r)
        for reason in RejectReason:  # every series exists from the start (rates from 0)
            self.rows_rejected.labels(reason.value)
        self.rows_settled = Counter(
            "ecom_ingest_rows_already_landed",
            "Records of a replayed batch that had landed before (skipped)", registry=r)
        self.batches = Counter("ecom_ingest_batches", "Committed micro-batches per query",
                               ["query"], registry=r)
        self.batch_seconds = Histogram(
            "ecom_ingest_batch_duration_seconds",
            "Micro-batch duration as Spark reports it (planning, reading, writing)", ["query"],
            buckets=BATCH_BUCKETS, registry=r)
        for query in QUERIES:
            self.batches.labels(query)
            self.batch_seconds.labels(query)
        self.last_success = Gauge(
            "ecom_ingest_last_batch_success_timestamp_seconds",
            "When the last events batch committed in PostgreSQL (Unix time)", registry=r)
        self.newest_event = Gauge(
            "ecom_ingest_newest_event_timestamp_seconds",
            "Event time of the newest event landed (Unix time)", registry=r)
        self.watermark = Gauge(
            "ecom_ingest_watermark_timestamp_seconds",
            "The realtime windows query's event-time watermark (Unix time)", registry=r)
        self.newest_event_at: float | None = None
        self.watermark_at: float | None = None
        #: partition -> next offset to read (the last batch's end offsets)
        self.positions: dict[int, int] = {int(p): o for p, o in (positions or {}).items()}
        self._scrape = _ScrapeTime(self)
        r.register(self._scrape)
        self.server: MetricsServer | None = None

    # ---- called by the job -------------------------------------------------------------
    def landed(self, result: BatchResult) -> None:
        """An events batch committed."""
        self.rows_read.inc(result.rows_read)
        self.rows_landed.inc(result.valid)
        self.rows_settled.inc(result.settled)
        for reason, count in result.reasons.items():
            self.rows_rejected.labels(reason).inc(count)
        self.batches.labels("events").inc()
        if result.newest_event_at is not None:
            newest = result.newest_event_at.timestamp()
            if self.newest_event_at is None or newest > self.newest_event_at:
                self.newest_event_at = newest
                self.newest_event.set(newest)
        self.last_success.set(self.clock())

    def progress(self, progress: Any) -> None:
        """A StreamingQueryProgress of either query."""
        name = progress.name
        if name not in QUERIES:
            return
        if progress.batchDuration is not None:
            self.batch_seconds.labels(name).observe(progress.batchDuration / 1000)
        if name == "events":
            if progress.sources:
                for partition, offset in progress_offsets(progress.sources[0].endOffset).items():
                    self.positions[int(partition)] = offset
            return
        if progress.numInputRows:
            self.batches.labels("windows").inc()
        watermark = parse_spark_time((progress.eventTime or {}).get("watermark"))
        if watermark:  # Spark reports the epoch before the first event: not a watermark
            self.watermark_at = watermark
            self.watermark.set(watermark)

    # ---- serving -----------------------------------------------------------------------
    def serve(self, host: str, port: int) -> MetricsServer:
        self.server = serve_registry(self.registry, host, port,
                                     setting="ECOM_STREAM_METRICS_PORT")
        return self.server

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        with self._scrape._lock:
            self._scrape.close_client()
