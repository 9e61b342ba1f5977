"""`ecom ingest batch`: replay a range of the topic with Spark batch jobs through the same sink.

For backfill and recovery: `--from earliest|<ISO time> --to latest|<ISO time>`. Times select
records by their Kafka timestamp (when the broker/producer stamped them), not by
event_timestamp. The range is cut into chunks of at most `max_rows_per_batch` offsets, each
read by one Spark job and landed by `ingestion.writer` (the driver or the executors write)
under the ledger name `replay-<run id>`. Idempotent: records whose coordinates already
landed in the topic's current epoch (the one the stream writes) are skipped, so a replay
over data the stream has ingested adds 0 rows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ecom.config import Settings
from ecom.errors import UserError
from ingestion.kafka_client import topic_offsets
from ingestion.kafka_source import FORMAT, source_options, split_ranges
from ingestion.sink import gc_paused
from ingestion.writer import Connections, land


@dataclass
class ReplayStats:
    query_name: str
    chunks: int = 0
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    duplicates: int = 0
    settled: int = 0
    seconds: float = 0.0


def parse_bound(text: str, default: str) -> int | None:
    """'earliest' / 'latest' -> None (no time bound); an ISO-8601 time -> epoch ms (UTC)."""
    text = text.strip()
    if text == default:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{text!r} is neither {default!r} nor an ISO-8601 time like 2026-11-24T13:00:00Z."
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def plan_chunks(starts: dict[int, int], ends: dict[int, int], max_rows: int
                ) -> list[tuple[dict[str, int], dict[str, int]]]:
    """Cut [starts, ends) into (start, end) offset dicts of at most max_rows offsets."""
    ranges = split_ranges("-", {str(p): o for p, o in starts.items()},
                          {str(p): o for p, o in ends.items()}, max(1, max_rows))
    return [({str(r.partition): r.start}, {str(r.partition): r.end}) for r in ranges]


def read_chunk(spark: Any, settings: Settings, topic: str, start: dict[str, int],
               end: dict[str, int], from_ms: int | None, to_ms: int | None) -> Any:
    if settings.kafka_source == "native":
        from ingestion.native import read_batch

        df = read_batch(spark, settings, topic, start, end)
        if from_ms is not None:
            df = df.where(f"timestamp >= timestamp_millis({from_ms})")
        if to_ms is not None:
            df = df.where(f"timestamp < timestamp_millis({to_ms})")
        return df
    reader = (
        spark.read.format(FORMAT)
        .options(**source_options(settings))
        .option("topic", topic)
        .option("starting_offsets", json.dumps(start))
        .option("ending_offsets", json.dumps(end))
    )
    if from_ms is not None:
        reader = reader.option("starting_timestamp_ms", str(from_ms))
    if to_ms is not None:
        reader = reader.option("ending_timestamp_ms", str(to_ms))
    return reader.load()


def replay(settings: Settings, spark: Any, start: str = "earliest", end: str = "latest",
           *, max_rows: int | None = None, log: Callable[[str], None] = print) -> ReplayStats:
    """Replay the topic's range through the sink (see the module docstring)."""
    from_ms = parse_bound(start, "earliest")
    to_ms = parse_bound(end, "latest")
    if from_ms is not None and to_ms is not None and from_ms >= to_ms:
        raise UserError(f"--from {start} is not before --to {end}.")
    topic = settings.topic_events
    partitions, starts, ends = topic_offsets(settings, topic)
    stats = ReplayStats(f"replay-{uuid.uuid4().hex[:12]}")
    chunks = plan_chunks(starts, ends, max_rows or settings.max_rows_per_batch)
    log(f"replaying {topic} {start} .. {end}: {sum(ends[p] - starts[p] for p in partitions):,} "
        f"offsets in {len(chunks)} chunk(s), ledger {stats.query_name}")
    conns = Connections(settings)
    began = time.perf_counter()
    try:
        for index, (lo, hi) in enumerate(chunks):
            t0 = time.perf_counter()
            df = read_chunk(spark, settings, topic, lo, hi, from_ms, to_ms)
            with gc_paused():  # the writer drops the events before the collector resumes
                result = land(settings, conns, stats.query_name, index, df)
            seconds = time.perf_counter() - t0
            stats.chunks += 1
            stats.rows += result.rows_read
            stats.valid += result.valid
            stats.rejected += result.rejected
            stats.duplicates += result.duplicates
            stats.settled += result.settled
            (p, o0), (_, o1) = next(iter(lo.items())), next(iter(hi.items()))
            log(f"chunk {index + 1}/{len(chunks)} p{p} [{o0}, {o1}): {result.rows_read:,} rows, "
                f"{result.valid:,} new, {result.rejected:,} rejected, "
                f"{result.settled:,} already landed in {seconds:.2f} s")
    finally:
        conns.close()
    stats.seconds = time.perf_counter() - began
    log(f"replay done: {stats.rows:,} rows read, {stats.valid:,} landed, {stats.rejected:,} "
        f"rejected ({stats.duplicates:,} duplicates), {stats.settled:,} were already landed, "
        f"in {stats.seconds:.1f} s")
    return stats
