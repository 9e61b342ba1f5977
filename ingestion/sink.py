"""Exactly-once landing of one micro-batch into PostgreSQL, the driver writer
(`ECOM_SINK_WRITER=driver`, the default; `ingestion.staging` is the executors writer, which
keeps the same steps in SQL). Used by the stream and the replay through `ingestion.writer`.

Why driver-side COPY inside one transaction (and not JDBC from the executors): exactly-once
needs the rows AND the ledger row `ops.ingest_batches (query_name, batch_id)` to commit
atomically. Executors writing over JDBC commit per task, so a crash between tasks leaves half
a batch behind; here one PostgreSQL transaction (connection `conn`) does everything:

1. `pg_advisory_xact_lock` per topic: the stream and a replay never interleave, so what
   another connection reads as committed stays true until we commit.
2. Ledger look-up: a batch id already recorded (Spark re-runs the last batch after a crash
   between our commit and its checkpoint commit) lands nothing new.
3. Coordinates already in `raw_events` or `rejected_events` in the topic's current epoch
   (`ops.ingest_epochs`, see `current_epoch`) are settled: skipped silently (a replay) -
   unless the stored event differs: then the broker re-used offsets after losing data, and
   we stop loudly without writing. `--reset-checkpoint` opens a new epoch, so records at
   offsets re-used by a restarted broker are new records there.
4. Re-sent event_ids (already in `raw_events`, or earlier in the same batch: the first one
   read wins, which is the lowest partition/offset when the batch arrives in order) become
   dead letters with reason `duplicate_event_id`.
5. COPY the new valid rows (tagged with the epoch) straight into `raw.raw_events`, the
   dead letters into `raw.rejected_events`, insert the ledger row, commit. No staging table and no
   `ON CONFLICT`: steps 1-4 removed every conflict first, so each row is written once.

Throughput: COPY into the indexed `raw_events` is the floor (PostgreSQL's work), so the
batch is processed in chunks and COPY streams from a background thread while the main
thread validates and renders the next chunk; the checks of steps 3-4 run on a second
connection (`check_conn`, autocommit; the first one is busy streaming), on their own thread
while the main thread validates the next chunk. Their reads are consistent: the lock keeps
other writers out, and this batch's own rows are tracked in memory. `bench/ingest.py`
compares the whole pipeline to a bare COPY of the same rows.

Python's cyclic garbage collector is paused while a batch lands (`gc_paused`): a batch
allocates several objects per record, all freed by reference counting, and the collector
would otherwise run hundreds of times per batch, each full pass walking every live object
- it doubled the validation time. Callers that keep the result should pause it around
their own use too and drop `result.landed` before it resumes: its first pass walks every
object allocated meanwhile that is still alive.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecom.errors import UserError
from ecom.events import RejectReason
from ingestion.copy_feed import COPY_READ_SIZE, CopyFeeder
from ingestion.copy_text import (
    RAW_COLUMNS,
    REJECTED_COLUMNS,
    copy_sql,
    raw_copy_text,
    rejected_copy_text,
)
from ingestion.epochs import current_epoch
from ingestion.records import Coord, KafkaRecords, RejectRow, SplitChunk, ValidRow, split_records
from ingestion.validation import Reject, ValidEvent


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (re-enabled if it was on)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class BatchResult:
    query_name: str
    batch_id: int
    rows_read: int = 0
    valid: int = 0  # new rows in raw_events
    rejected: int = 0  # new rows in rejected_events (duplicates included)
    duplicates: int = 0  # of which duplicate_event_id
    settled: int = 0  # landed before (a replay): skipped
    skipped_batch: bool = False  # the ledger already had this batch id
    epoch: int = 0  # the topic epoch the batch landed in
    seconds: float = 0.0
    landed: list[ValidEvent] = field(default_factory=list)  # for processed-events
    published: int = 0  # messages sent to processed-events
    newest_event_at: datetime | None = None  # event_timestamp of the newest event landed
    reasons: dict[str, int] = field(default_factory=dict)
    start_offsets: dict[str, int] = field(default_factory=dict)
    end_offsets: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds

    def mark(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - since
        return now

    def count_reject(self, reason: str, n: int = 1) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + n


class OffsetsReusedError(UserError):
    """The broker hands out offsets we already stored for different records."""


def reused(coord: Coord, stored: object, seen: object) -> OffsetsReusedError:
    topic, partition, offset = coord
    return OffsetsReusedError(
        f"Kafka offset {offset} of {topic}[{partition}] was already ingested as {stored}, but "
        f"the broker now returns {seen} there: the broker lost its data and re-used offsets. "
        "Nothing of this batch was written; `ecom ingest stream --reset-checkpoint` opens a "
        "new topic epoch (see ingestion/README.md, 'Broker data loss')."
    )


class _Checker:
    """Read-only look-ups on the second connection (committed state, under our lock)."""

    def __init__(self, conn: Any) -> None:
        self.cur = conn.cursor()

    def coords(self, table: str, ranges: dict[tuple[str, int], tuple[int, int]],
               extra: str, epoch: int) -> dict[Coord, Any]:
        found: dict[Coord, Any] = {}
        for (topic, partition), (lo, hi) in ranges.items():
            self.cur.execute(
                f"select kafka_offset, {extra} from {table} where kafka_topic = %s "
                "and kafka_epoch = %s and kafka_partition = %s and kafka_offset >= %s "
                "and kafka_offset < %s",
                (topic, epoch, partition, lo, hi),
            )
            for offset, value in self.cur.fetchall():
                found[(topic, partition, offset)] = value
        return found

    def landed_ids(self, event_ids: list[str]) -> dict[str, tuple[int, int]]:
        """event_id -> (partition, offset) for those already in raw_events.

        `= any(array)` probes the primary key per id (about 3 us each, independent of the
        table's size); a join with a COPYed temp table was planned as a hash join over the
        whole table instead.
        """
        if not event_ids:
            return {}
        self.cur.execute(
            "select event_id::text, kafka_partition, kafka_offset from raw.raw_events "
            "where event_id = any(%s::uuid[])", (event_ids,))
        return {eid: (p, o) for eid, p, o in self.cur.fetchall()}

    def close(self) -> None:
        self.cur.close()


def _sort_key(row: ValidRow | RejectRow) -> Coord:
    return row.coord


def _settle(chunk: SplitChunk, check: _Checker, ranges: dict[tuple[str, int], tuple[int, int]],
            result: BatchResult, epoch: int) -> tuple[list[ValidRow], list[RejectRow]]:
    """Drop rows whose coordinates already landed in this epoch (replay); return the new."""
    in_raw = check.coords("raw.raw_events", ranges, "event_id::text", epoch)
    in_rejected = check.coords("raw.rejected_events", ranges, "raw_size_bytes", epoch)
    if not in_raw and not in_rejected:
        return chunk.valid, chunk.rejects
    valid: list[ValidRow] = []
    for row in chunk.valid:
        stored = in_raw.get(row.coord)
        if stored is not None:
            if stored != row.event.event_id:
                raise reused(row.coord, f"event {stored}", f"event {row.event.event_id}")
            result.settled += 1
            result.landed.append(row.event)  # re-published: processed-events is at-least-once
        elif row.coord in in_rejected:
            result.settled += 1
        else:
            valid.append(row)
    rejects: list[RejectRow] = []
    for rej in chunk.rejects:
        if rej.coord in in_raw:
            if (rej.reject.reason is RejectReason.DUPLICATE_EVENT_ID
                    and rej.reject.event_id == in_raw[rej.coord]):
                # this record landed first in an earlier batch; this replay's batch read its
                # twin (another partition) first and called this one the duplicate
                result.settled += 1
                continue
            raise reused(rej.coord, f"event {in_raw[rej.coord]}", "an invalid record")
        if rej.coord in in_rejected:
            size = in_rejected[rej.coord]
            if rej.value is not None and size is not None and size != len(rej.value):
                raise reused(rej.coord, f"a {size}-byte record", f"{len(rej.value)} bytes")
            result.settled += 1
        else:
            rejects.append(rej)
    return valid, rejects


def ledger_conflict(query_name: str, batch_id: int, ledger: Any, unsettled: int) -> UserError:
    return OffsetsReusedError(
        f"Batch {batch_id} of {query_name} is recorded as landed (offsets up to {ledger}), yet "
        f"{unsettled} of its records are in neither raw table: the broker lost data and re-used "
        "offsets. Nothing was written; `ecom ingest stream --reset-checkpoint` opens a new "
        "topic epoch (see ingestion/README.md, 'Broker data loss')."
    )


class _Lander:
    """The state of one batch's transaction (see land_batch)."""

    def __init__(self, cur: Any, check: _Checker, result: BatchResult, now_ms: int) -> None:
        self.cur = cur
        self.check = check
        self.result = result
        self.now_ms = now_ms
        self.first_seen: dict[str, Coord] = {}
        self.feeder: CopyFeeder | None = None
        self.rejects: list[RejectRow] = []
        self.ranges: dict[tuple[str, int], tuple[int, int]] = {}
        self.locked: set[str] = set()
        self.epoch = 0  # of the batch's topic, read under its lock
        self.ledger: Any = None
        self.mark = time.perf_counter()
        self.checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecom-checks")
        self.pending: Future[tuple[list[ValidRow], list[RejectRow]]] | None = None

    def _lock_and_track(self, ranges: dict[tuple[str, int], tuple[int, int]]) -> None:
        for (topic, partition), (lo, hi) in ranges.items():
            if topic not in self.locked:  # lock before reading anything
                if self.locked:
                    raise ValueError(f"a batch reads one topic, got {self.locked} and {topic}")
                self.cur.execute("select pg_advisory_xact_lock(hashtext(%s))",
                                 (f"ecom-ingest:{topic}",))
                self.locked.add(topic)
                self.epoch = self.result.epoch = current_epoch(self.cur, topic)
            old = self.ranges.get((topic, partition))
            self.ranges[(topic, partition)] = (lo, hi) if old is None else (
                min(old[0], lo), max(old[1], hi))

    def add_chunk(self, records: KafkaRecords) -> None:
        """Validate this chunk, start its checks, then write the previous chunk.

        The checks (coordinates and event_ids already in PostgreSQL) run on the check
        connection's thread while this thread validates the next chunk.
        """
        result = self.result
        self.mark = result.mark("read", self.mark)
        ranges = records.offset_ranges()
        self._lock_and_track(ranges)
        if result.rows_read == 0:
            self.cur.execute(
                "select end_offsets from ops.ingest_batches where query_name = %s "
                "and batch_id = %s", (result.query_name, result.batch_id))
            self.ledger = self.cur.fetchone()
            result.skipped_batch = self.ledger is not None
        result.rows_read += len(records)
        split = split_records(records, self.now_ms, self.first_seen)
        self.mark = result.mark("validate", self.mark)
        previous, self.pending = self.pending, self.checker.submit(self._check, split, ranges)
        if previous is not None:
            self._write(*previous.result())

    def _check(self, split: SplitChunk, ranges: dict[tuple[str, int], tuple[int, int]]
               ) -> tuple[list[ValidRow], list[RejectRow]]:
        """(On the check thread.) The chunk's new valid rows and new dead letters."""
        result = self.result
        valid, rejects = _settle(split, self.check, ranges, result, self.epoch)
        if self.ledger is not None:
            if valid or rejects:
                raise ledger_conflict(result.query_name, result.batch_id, self.ledger[0],
                                      len(valid) + len(rejects))
            return [], []
        return self._drop_landed_ids(valid, rejects), rejects

    def _write(self, valid: list[ValidRow], rejects: list[RejectRow]) -> None:
        """Stream a checked chunk's valid rows into the COPY; keep its dead letters."""
        result = self.result
        self.mark = result.mark("checks", self.mark)  # waiting for them, not their cost
        self.rejects.extend(rejects)
        if valid:
            text = raw_copy_text(valid, self.epoch)
            self.mark = result.mark("render", self.mark)
            if self.feeder is None:
                self.feeder = CopyFeeder(self.cur, copy_sql("raw.raw_events", RAW_COLUMNS))
            self.feeder.write(text)
            self.mark = result.mark("copy_wait", self.mark)
            result.valid += len(valid)
            result.landed.extend(row.event for row in valid)

    def _drop_landed_ids(self, valid: list[ValidRow], rejects: list[RejectRow]
                         ) -> list[ValidRow]:
        """Valid rows whose event_id already landed become duplicate_event_id dead letters."""
        landed = self.check.landed_ids([row.event.event_id for row in valid])
        if not landed:
            return valid
        keep = []
        for row in valid:
            where = landed.get(row.event.event_id)
            if where is None:
                keep.append(row)
                continue
            rejects.append(RejectRow(row.coord, row.timestamp_ms, row.key, row.value, Reject(
                RejectReason.DUPLICATE_EVENT_ID,
                f"event_id {row.event.event_id} already landed at partition {where[0]} "
                f"offset {where[1]}", row.event.event_id)))
        return keep

    def finish(self) -> None:
        """End the COPY, write dead letters and the ledger row (the caller commits)."""
        result = self.result
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._write(*pending.result())
        self.checker.shutdown()
        if self.feeder is not None:
            self.feeder.finish()
            self.feeder = None
            self.mark = result.mark("copy_wait", self.mark)
        if result.skipped_batch or result.rows_read == 0:
            return
        if self.rejects:
            self.rejects.sort(key=_sort_key)
            self.cur.copy_expert(
                copy_sql("raw.rejected_events", REJECTED_COLUMNS),
                io.StringIO(rejected_copy_text(self.rejects, self.epoch)),
                size=COPY_READ_SIZE)
            for rej in self.rejects:
                result.count_reject(rej.reject.reason.value)
        result.rejected = len(self.rejects)
        result.duplicates = result.reasons.get(RejectReason.DUPLICATE_EVENT_ID.value, 0)
        record_ledger(self.cur, result, self.ranges, self.epoch)
        self.mark = result.mark("rejects_ledger", self.mark)

    def abort(self) -> None:
        self.checker.shutdown(wait=True, cancel_futures=True)  # the check thread is idle
        if self.feeder is not None:
            self.feeder.abort()  # stop the COPY before the rollback


def record_ledger(cur: Any, result: BatchResult,
                  ranges: dict[tuple[str, int], tuple[int, int]], epoch: int) -> None:
    """The batch's ledger row (its offsets and counts), in the caller's transaction."""
    ordered = sorted(ranges.items())
    result.start_offsets = {str(p): lo for (_, p), (lo, _) in ordered}
    result.end_offsets = {str(p): hi for (_, p), (_, hi) in ordered}
    cur.execute(
        "insert into ops.ingest_batches (query_name, batch_id, start_offsets, end_offsets, "
        "rows_read, rows_valid, rows_rejected, rows_duplicate, kafka_epoch) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (result.query_name, result.batch_id, json.dumps(result.start_offsets),
         json.dumps(result.end_offsets), result.rows_read, result.valid, result.rejected,
         result.duplicates, epoch),
    )


def land_batch(
    conn: Any,
    check_conn: Any,
    query_name: str,
    batch_id: int,
    chunks: Iterable[KafkaRecords] | KafkaRecords,
    now_ms: int | None = None,
) -> BatchResult:
    """Land one batch exactly once (see the module docstring). Commits or raises.

    `conn`: the loader's transaction connection; `check_conn`: a second loader connection
    in autocommit mode for look-ups. `chunks`: the batch in order (or one KafkaRecords).
    """
    started = time.perf_counter()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    result = BatchResult(query_name, batch_id)
    if isinstance(chunks, KafkaRecords):
        chunks = [chunks]
    check = _Checker(check_conn)
    try:
        with gc_paused(), conn, conn.cursor() as cur:
            lander = _Lander(cur, check, result, now_ms)
            try:
                for records in chunks:
                    if len(records):
                        lander.add_chunk(records)
                lander.finish()
            except BaseException:
                lander.abort()
                raise
        result.mark("commit", lander.mark)
    finally:
        check.close()
    result.seconds = time.perf_counter() - started
    return result
