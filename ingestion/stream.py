"""`ecom ingest stream`: two Spark Structured Streaming queries in one driver.

1. `events`: topic `ecommerce-events` -> `foreachBatch`: validate, land exactly once in
   PostgreSQL and publish the landed events to `processed-events` (`ingestion.writer`:
   the driver or the executors write, `ECOM_SINK_WRITER`).
2. `windows`: topic `processed-events` -> watermark + 5-minute windows (update mode) ->
   `foreachBatch`: recompute the touched windows in `raw.realtime_metrics`
   (`ingestion.windows`).

Offsets live in Spark checkpoints under `<data dir>/checkpoints/ingest/`; the sink's ledger
key is a name stored next to them (`identity.json`), so a reset checkpoint starts a new
ledger lane instead of colliding with old batch ids, and opens a new topic epoch (the
broker lost its data and re-uses offsets: see `ingestion.sink`).

Runs until SIGINT/SIGTERM, stopping between batches: the sources stop planning new batches
(a pause file they check), the batch in flight commits, then the queries stop. A hard kill
is safe too (the batch in flight rolls back and is replayed): that is what the crash test
does. With
`--available-now` it drains what the topic holds when it starts, then the windows catch up,
then it exits (Trigger.AvailableNow, supported by the Python source).
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError
from ingestion.checkpoint import (
    StreamPaths,
    committed_offsets,
    ledger_name,
    planned_offsets,
    reset_checkpoint,
    stream_paths,
)
from ingestion.epochs import start_epoch
from ingestion.kafka_client import settings_client
from ingestion.kafka_source import FORMAT, check_not_ahead, source_options
from ingestion.metrics import StreamMetrics
from ingestion.progress import batch_line, lag, progress_offsets
from ingestion.publish import Publisher
from ingestion.sink import BatchResult, gc_paused
from ingestion.windows import upsert_windows, window_stream
from ingestion.writer import Connections, land

RESET_HINT = "`ecom ingest stream --reset-checkpoint` (re-reads the topic from its start)."
STREAM_APP = "ecom-ingest-stream"  # the Spark app name (and its log file's)


def open_epoch(settings: Settings) -> int:
    """Start a new epoch of the events topic (the sink and the replay land into it)."""
    conn = connect(settings, "loader")
    try:
        return start_epoch(conn, settings.topic_events)
    finally:
        conn.close()


def preflight(settings: Settings, paths: StreamPaths) -> None:
    """Fail fast, before Spark starts, if a checkpoint is ahead of its topic's log end."""
    client = settings_client(settings)
    try:
        for checkpoint, topic in ((paths.events, settings.topic_events),
                                  (paths.windows, settings.topic_processed)):
            planned = planned_offsets(checkpoint)
            if not planned:
                continue
            ends = client.log_ends(topic, client.partitions(topic))
            check_not_ahead(topic, planned, ends, RESET_HINT)
    finally:
        client.close()


def source_stream(spark: Any, settings: Settings, topic: str, max_rows: int,
                  pause_file: Path | None = None) -> Any:
    """The raw Kafka stream (topic, partition, offset, timestamp, key, value).

    While `pause_file` exists the Python source plans no new batch (a clean stop).
    """
    if settings.kafka_source == "native":
        from ingestion.native import read_stream

        return read_stream(spark, settings, topic)
    if settings.kafka_source != "python":
        raise UserError(
            f"Unknown ECOM_KAFKA_SOURCE {settings.kafka_source!r}: use 'python' or 'native'.")
    return (
        spark.readStream.format(FORMAT)
        .options(**source_options(settings))
        .option("topic", topic)
        .option("max_rows_per_batch", str(max_rows))
        .option("starting_offsets", "earliest")
        .option("reset_hint", RESET_HINT)
        .option("pause_file", str(pause_file or ""))
        .load()
    )


_ERROR_PATTERN = re.compile(
    r"(?:UserError|OffsetsReusedError): (.+?)(?:\n\s*\n|\n\s*at |\n\tat |\nJVM stacktrace|$)",
    re.S,
)


def explain_failure(text: str) -> str | None:
    """The UserError message buried in a StreamingQueryException's text, if any."""
    found = _ERROR_PATTERN.findall(text)
    return " ".join(found[-1].split()) if found else None


#: psycopg2's errors for a connection that went away (server stopped, restarted, network)
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


def connection_lost(exc: BaseException, batch: str) -> UserError:
    """One sentence for a PostgreSQL connection lost under a foreachBatch callback.

    Names psycopg2's first line of the original error (the rollback on a dead connection
    raises "connection already closed" over it).
    """
    root = exc
    while isinstance(root.__context__, CONNECTION_ERRORS):
        root = root.__context__
    first = next((ln.strip() for ln in str(root).splitlines() if ln.strip()),
                 type(root).__name__)
    return UserError(
        f"PostgreSQL connection lost ({first}) while writing {batch}: that batch was rolled "
        "back, nothing of it is half-written. Start PostgreSQL (e.g. `ecom stack up`) and "
        "re-run `ecom ingest stream`: it resumes from its checkpoint.")


@dataclass
class StreamStats:
    batches: int = 0
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    duplicates: int = 0
    window_keys: int = 0
    seconds: float = 0.0  # spent landing batches
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per phase
    results: dict[int, tuple[BatchResult, float]] = field(default_factory=dict)
    window_batches: dict[int, int] = field(default_factory=dict)


class IngestJob:
    """Owns the Spark session's two queries, the database connections and the publisher."""

    def __init__(self, settings: Settings, spark: Any, *, log: Callable[[str], None] = print,
                 max_rows: int | None = None, publish: bool = True,
                 metrics: StreamMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics  # Prometheus (ingestion.metrics); None = not collected
        self.spark = spark
        self.log = log
        self.max_rows = max_rows or settings.max_rows_per_batch
        self.paths = stream_paths(settings)
        self.query_name = ledger_name(self.paths)
        self.publisher = Publisher(settings) if publish else None
        self.stats = StreamStats()
        self.batch_log: list[tuple[BatchResult, float]] = []  # every landed batch, in order
        self._stopping = threading.Event()
        self._pause_file = self.paths.root / f"pause-{uuid.uuid4().hex[:8]}"
        self._failure: BaseException | None = None
        self.conns = Connections(settings)
        self.queries: dict[str, Any] = {}
        self._listener: Any = None

    # ---- foreachBatch callbacks --------------------------------------------------------
    def land(self, df: Any, batch_id: int) -> None:
        """foreachBatch of the events query: land exactly once, then publish."""
        started = time.perf_counter()
        try:
            # one pause for the whole batch, its objects dropped before the collector
            # resumes: its first pass then finds little to walk (see ingestion.sink)
            with gc_paused():
                result = land(self.settings, self.conns, self.query_name, batch_id, df,
                              self.publisher)
                if self.metrics is not None:  # committed: count it
                    self.metrics.landed(result)
        except CONNECTION_ERRORS as exc:
            self._failure = connection_lost(exc, f"events batch {batch_id}")
            raise self._failure from exc
        except BaseException as exc:
            self._failure = exc  # land_batch rolled back: nothing of it is visible
            raise
        seconds = time.perf_counter() - started
        stats = self.stats
        stats.batches += 1
        stats.rows += result.rows_read
        stats.valid += result.valid
        stats.rejected += result.rejected
        stats.duplicates += result.duplicates
        stats.seconds += seconds
        stats.results[batch_id] = (result, seconds)
        self.batch_log.append((result, seconds))

    def update_windows(self, df: Any, batch_id: int) -> None:
        """foreachBatch of the windows query: recompute the touched windows."""
        try:
            table = df.toArrow()
            keys = list(zip(table.column("window_start").to_pylist(),
                            table.column("event_type").to_pylist(),
                            table.column("category").to_pylist(), strict=True))
            updated = upsert_windows(self.conns.get("windows"), keys)
        except CONNECTION_ERRORS as exc:
            self._failure = connection_lost(exc, f"windows batch {batch_id}")
            raise self._failure from exc
        except BaseException as exc:
            self._failure = exc
            raise
        self.stats.window_keys += updated
        self.stats.window_batches[batch_id] = updated

    # ---- queries -----------------------------------------------------------------------
    def _trigger(self, available_now: bool) -> dict[str, Any]:
        if available_now:
            return {"availableNow": True}
        return {"processingTime": f"{self.settings.trigger_seconds} seconds"}

    def start_events(self, available_now: bool) -> Any:
        stream = source_stream(self.spark, self.settings, self.settings.topic_events,
                               self.max_rows, self._pause_file)
        query = (
            stream.writeStream.queryName("events")
            .foreachBatch(self.land)
            .option("checkpointLocation", str(self.paths.events))
            .trigger(**self._trigger(available_now))
            .start()
        )
        self.queries["events"] = query
        return query

    def start_windows(self, available_now: bool) -> Any:
        # no row cap: each batch takes all that was published, so lateness follows arrival
        stream = source_stream(self.spark, self.settings, self.settings.topic_processed, 0,
                               self._pause_file)
        keys = window_stream(self.spark, stream, self.settings.watermark_minutes)
        query = (
            keys.writeStream.queryName("windows")
            .outputMode("update")
            .foreachBatch(self.update_windows)
            .option("checkpointLocation", str(self.paths.windows))
            .trigger(**self._trigger(available_now))
            .start()
        )
        self.queries["windows"] = query
        return query

    def listen(self) -> None:
        """Log one progress line per batch (a StreamingQueryListener sees lag and offsets)."""
        if self._listener is not None:
            return
        from pyspark.sql.streaming import StreamingQueryListener

        job = self

        class Progress(StreamingQueryListener):
            def onQueryStarted(self, event: Any) -> None:
                pass

            def onQueryProgress(self, event: Any) -> None:
                progress = event.progress
                if job.metrics is not None:
                    job.metrics.progress(progress)
                if progress.name == "windows" and progress.numInputRows:
                    keys = job.stats.window_batches.pop(progress.batchId, 0)
                    watermark = (progress.eventTime or {}).get("watermark", "-")
                    job.log(f"windows batch {progress.batchId}: {progress.numInputRows:,} "
                            f"events, {keys:,} window rows recomputed, watermark {watermark}, "
                            f"{progress.batchDuration / 1000:.2f} s")
                    return
                if progress.name != "events" or not progress.sources:
                    return
                entry = job.stats.results.pop(progress.batchId, None)
                if entry is None:
                    return
                result, seconds = entry
                source = progress.sources[0]
                end = progress_offsets(source.endOffset)
                latest = progress_offsets(getattr(source, "latestOffset", None)) or end
                line = batch_line(result, seconds, lag(latest, end))
                if job.settings.verbose:
                    line += " [" + " ".join(f"{k} {v:.2f}" for k, v in result.timings.items())
                    line += "; spark ms " + json.dumps(progress.durationMs) + "]"
                job.log(line)

            def onQueryIdle(self, event: Any) -> None:
                pass

            def onQueryTerminated(self, event: Any) -> None:
                pass

        self._listener = Progress()
        self.spark.streams.addListener(self._listener)

    # ---- running and stopping ----------------------------------------------------------
    def request_stop(self) -> None:
        """Stop between batches: wait for the batch in flight, then stop the queries."""
        self._stopping.set()

    def _stop_all(self, timeout_s: float = 300.0) -> None:
        """Pause the sources (no new batch is planned), let the batch in flight commit, stop."""
        self._stopping.set()
        self._pause_file.parent.mkdir(parents=True, exist_ok=True)
        self._pause_file.touch()
        deadline = time.monotonic() + timeout_s
        idle_checks = 0
        while idle_checks < 3 and time.monotonic() < deadline:
            busy = any(q.isActive and q.status.get("isTriggerActive") for q in
                       self.queries.values())
            idle_checks = 0 if busy else idle_checks + 1
            time.sleep(0.05)
        for query in self.queries.values():
            if query.isActive:
                query.stop()

    def wait(self, queries: list[Any]) -> None:
        """Wait until the queries end (or a stop is requested); raise their failure."""
        while True:
            if self._stopping.is_set():
                self._stop_all()
                return
            for query in queries:
                if not query.isActive:
                    self._raise_failure(query)
            if all(not q.isActive for q in queries):
                return
            try:
                queries[0].awaitTermination(0.5)
            except Exception:
                continue

    def _raise_failure(self, query: Any) -> None:
        exc = query.exception()
        if exc is None:
            return
        if self._stopping.is_set():
            return
        if isinstance(self._failure, UserError):
            raise self._failure
        text = str(exc)
        message = explain_failure(text) or explain_failure(getattr(exc, "desc", "") or "")
        for other in self.queries.values():
            if other.isActive:
                other.stop()
        if message:
            raise UserError(message)
        raise UserError(f"The {query.name} query failed: {text.strip().splitlines()[0][:500]} "
                        "(run with --verbose for details).") from exc

    def run(self, available_now: bool = False) -> StreamStats:
        self.listen()
        try:
            if available_now:
                t0 = time.perf_counter()
                self.wait([self.start_events(available_now=True)])
                t1 = time.perf_counter()
                self.stats.phases["events"] = t1 - t0
                if not self._stopping.is_set():
                    self.wait([self.start_windows(available_now=True)])
                    self.stats.phases["windows"] = time.perf_counter() - t1
            else:
                self.wait([self.start_events(False), self.start_windows(False)])
        finally:
            self.close()
        return self.stats

    def close(self) -> None:
        self._pause_file.unlink(missing_ok=True)
        for query in self.queries.values():
            if query.isActive:
                query.stop()
        if self._listener is not None:
            self.spark.streams.removeListener(self._listener)
            self._listener = None
        if self.publisher is not None:
            self.publisher.close()
        self.conns.close()


def serve_metrics(settings: Settings, paths: StreamPaths,
                  log: Callable[[str], None]) -> StreamMetrics:
    """The stream's Prometheus endpoint (ECOM_STREAM_METRICS_PORT), lag counted from the
    checkpoint's committed offsets until the first batch reports its own."""
    metrics = StreamMetrics(settings, positions=committed_offsets(paths.events))
    server = metrics.serve(settings.metrics_host, settings.stream_metrics_port)
    log(f"metrics: {server.url}")
    return metrics


def run_stream(settings: Settings, *, available_now: bool = False, reset: bool = False,
               max_rows: int | None = None, log: Callable[[str], None] = print,
               spark: Any = None, traces: bool = True) -> StreamStats:
    """The `ecom ingest stream` command: preflight, Spark, two queries, signals.

    `traces=False` (the CLI without --verbose): Spark does not log a failed query's stack
    trace; the failure reaches the user as one sentence.
    """
    from ingestion.spark import build_session, quiet_query_errors, spark_log_file

    if reset:
        reset_checkpoint(settings)
        epoch = open_epoch(settings)
        log(f"checkpoint reset: the stream starts again from the topic's earliest offsets "
            f"in topic epoch {epoch} (records at offsets used before land as new ones; "
            "re-sent events are duplicate_event_id dead letters)")
    paths = stream_paths(settings)
    preflight(settings, paths)
    # before Spark starts: a metrics port already taken fails at once
    metrics = serve_metrics(settings, paths, log) if settings.stream_metrics_port else None
    own_session = spark is None
    t0 = time.perf_counter()
    try:
        spark = spark or build_session(settings, STREAM_APP)
    except BaseException:
        if metrics is not None:
            metrics.close()
        raise
    if not traces:
        quiet_query_errors(spark)
    spark_start = time.perf_counter() - t0
    job = IngestJob(settings, spark, log=log, max_rows=max_rows, metrics=metrics)
    mode = "until caught up" if available_now else "until stopped (Ctrl-C)"
    log(f"ingesting {settings.topic_events} -> raw.raw_events / raw.rejected_events "
        f"(ledger {job.query_name}), {mode}; Spark's log: "
        f"{spark_log_file(settings, STREAM_APP)}")
    previous = {}

    def _on_signal(signum: int, _frame: object) -> None:
        log(f"{signal.Signals(signum).name}: stopping after the batch in flight")
        job.request_stop()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    started = time.perf_counter()
    try:
        stats = job.run(available_now=available_now)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics is not None:
            metrics.close()
        if own_session:
            spark.stop()
    elapsed = time.perf_counter() - started
    log(f"done: {stats.batches} batches, {stats.rows:,} rows read, {stats.valid:,} landed, "
        f"{stats.rejected:,} rejected ({stats.duplicates:,} duplicates), "
        f"{stats.window_keys:,} window rows updated in {elapsed:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in {"spark start": spark_start,
                                                   **stats.phases}.items()) + ")")
    return stats
