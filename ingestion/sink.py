"""Exactly-once landing of one micro-batch into PostgreSQL (used by the stream and the replay).

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
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ecom.errors import UserError
from ecom.events import RejectReason
from ingestion.validation import Reject, ValidEvent, raw_text, validate

RAW_COLUMNS = (
    "event_id", "user_id", "session_id", "event_type", "event_timestamp", "product_id",
    "category", "price", "quantity", "page_url", "user_agent", "ip_address", "raw_data",
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_epoch",
)
REJECTED_COLUMNS = (
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "kafka_timestamp",
    "raw_value", "raw_size_bytes", "event_id", "reason_code", "reason_message", "kafka_epoch",
)
CHUNK_ROWS = 20_000
COPY_READ_SIZE = 8 << 20

Coord = tuple[str, int, int]


@dataclass
class KafkaRecords:
    """Records as columns (what the Kafka source emits), sorted by partition and offset."""

    topic: list[str]
    partition: list[int]
    offset: list[int]
    timestamp_ms: list[int | None]
    key: list[str | None]
    value: list[bytes | None]

    def __len__(self) -> int:
        return len(self.offset)

    @classmethod
    def empty(cls) -> KafkaRecords:
        return cls([], [], [], [], [], [])

    @classmethod
    def from_arrow(cls, table: Any) -> KafkaRecords:
        """From a pyarrow Table/RecordBatch with the source's columns."""
        import pyarrow as pa
        import pyarrow.compute as pc

        ts = table.column("timestamp")
        if pa.types.is_timestamp(ts.type):
            ts = pc.divide(pc.cast(pc.cast(ts, pa.timestamp("us")), pa.int64()), 1000)
        key = table.column("key")
        if pa.types.is_binary(key.type) or pa.types.is_large_binary(key.type):
            keys = [k.decode("utf-8", "replace") if k is not None else None
                    for k in key.to_pylist()]
        else:
            keys = key.to_pylist()
        value = table.column("value")
        if not (pa.types.is_binary(value.type) or pa.types.is_large_binary(value.type)):
            value = pc.cast(value, pa.binary())
        return cls(
            topic=table.column("topic").to_pylist(),
            partition=table.column("partition").to_pylist(),
            offset=table.column("offset").to_pylist(),
            timestamp_ms=ts.to_pylist(),
            key=keys,
            value=value.to_pylist(),
        )

    def offset_ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(topic, partition) -> (first offset, last offset + 1) present."""
        ranges: dict[tuple[str, int], tuple[int, int]] = {}
        for topic, partition, offset in zip(self.topic, self.partition, self.offset, strict=True):
            lo_hi = ranges.get((topic, partition))
            if lo_hi is None:
                ranges[(topic, partition)] = (offset, offset + 1)
            elif offset < lo_hi[0] or offset >= lo_hi[1]:
                ranges[(topic, partition)] = (min(lo_hi[0], offset), max(lo_hi[1], offset + 1))
        return ranges


def arrow_chunks(table: Any, rows: int = CHUNK_ROWS) -> Iterator[KafkaRecords]:
    """A collected micro-batch (pyarrow Table) as KafkaRecords chunks of at most `rows`."""
    for batch in table.to_batches(max_chunksize=rows):
        if batch.num_rows:
            yield KafkaRecords.from_arrow(batch)


# ---- validation of a chunk (pure) ---------------------------------------------------------

@dataclass
class ValidRow:
    coord: Coord
    timestamp_ms: int | None
    key: str | None
    value: bytes
    event: ValidEvent


@dataclass
class RejectRow:
    coord: Coord
    timestamp_ms: int | None
    key: str | None
    value: bytes | None
    reject: Reject


@dataclass
class SplitChunk:
    valid: list[ValidRow] = field(default_factory=list)
    rejects: list[RejectRow] = field(default_factory=list)


def split_records(
    records: KafkaRecords, now_ms: int, first_seen: dict[str, Coord] | None = None
) -> SplitChunk:
    """Validate records; an event_id already in `first_seen` (this batch) is a duplicate.

    `first_seen` is shared by the chunks of one batch and updated in place.
    """
    first_seen = {} if first_seen is None else first_seen
    out = SplitChunk()
    for topic, partition, offset, ts, key, value in zip(
        records.topic, records.partition, records.offset, records.timestamp_ms, records.key,
        records.value, strict=True,
    ):
        reference = now_ms if ts is None or ts > now_ms else ts
        coord = (topic, partition, offset)
        result = validate(value, reference)
        if isinstance(result, Reject):
            out.rejects.append(RejectRow(coord, ts, key, value, result))
            continue
        first = first_seen.get(result.event_id)
        if first is not None:
            out.rejects.append(RejectRow(coord, ts, key, value, Reject(
                RejectReason.DUPLICATE_EVENT_ID,
                f"event_id {result.event_id} already read at partition {first[1]} "
                f"offset {first[2]}", result.event_id)))
            continue
        first_seen[result.event_id] = coord
        out.valid.append(ValidRow(coord, ts, key, value, result))  # type: ignore[arg-type]
    return out


# ---- COPY text format ---------------------------------------------------------------------

def _text(value: str | None) -> str:
    if value is None:
        return "\\N"
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\n" in value or "\r" in value or "\t" in value:
        value = value.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return value


def _ts_ms(ms: int | None) -> str:
    if ms is None:
        return "\\N"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _num(value: float | int | None) -> str:
    return "\\N" if value is None else repr(value)


def raw_copy_text(rows: Iterable[ValidRow], epoch: int = 0) -> str:
    """`raw.raw_events` rows (RAW_COLUMNS) of topic epoch `epoch` in COPY text format."""
    out = []
    epoch_text = str(epoch)
    ts_cache: dict[int | None, str] = {}
    for row in rows:
        e = row.event
        kafka_ts = ts_cache.get(row.timestamp_ms)
        if kafka_ts is None:
            kafka_ts = ts_cache[row.timestamp_ms] = _ts_ms(row.timestamp_ms)
        if e.canonical:  # no escapes in the JSON: no string needs COPY escaping
            raw = e.raw_json
            if "\n" in raw or "\r" in raw or "\t" in raw:
                raw = _text(raw)
            out.append("\t".join((
                e.event_id, e.user_id, e.session_id, e.event_type, e.timestamp_text,
                e.product_id or "\\N", e.category or "\\N", _num(e.price), _num(e.quantity),
                e.page_url, e.user_agent, e.ip_address, raw, row.coord[0], str(row.coord[1]),
                str(row.coord[2]), kafka_ts, epoch_text,
            )))
            continue
        out.append("\t".join((
            e.event_id, _text(e.user_id), _text(e.session_id), e.event_type,
            e.event_timestamp.isoformat(), _text(e.product_id), _text(e.category),
            _num(e.price), _num(e.quantity), _text(e.page_url), _text(e.user_agent),
            _text(e.ip_address), _text(e.raw_json), _text(row.coord[0]), str(row.coord[1]),
            str(row.coord[2]), kafka_ts, epoch_text,
        )))
    out.append("")
    return "\n".join(out)


def rejected_copy_text(rows: Iterable[RejectRow], epoch: int = 0) -> str:
    """`raw.rejected_events` rows (REJECTED_COLUMNS) of topic epoch `epoch`, COPY text."""
    out = []
    epoch_text = str(epoch)
    for row in rows:
        out.append("\t".join((
            _text(row.coord[0]), str(row.coord[1]), str(row.coord[2]), _text(row.key),
            _ts_ms(row.timestamp_ms), _text(raw_text(row.value)),
            "\\N" if row.value is None else str(len(row.value)),
            _text(row.reject.event_id), row.reject.reason.value, _text(row.reject.message),
            epoch_text,
        )))
    out.append("")
    return "\n".join(out)


def copy_sql(table: str, columns: Iterable[str]) -> str:
    return f"copy {table} ({', '.join(columns)}) from stdin"


class _Aborted(Exception):
    pass


class CopyFeeder:
    """COPY ... FROM STDIN on a background thread, fed with text chunks from this thread."""

    _END = object()
    _ABORT = object()

    def __init__(self, cursor: Any, sql: str) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._buf = ""
        self._pos = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(cursor, sql), daemon=True)
        self._thread.start()

    def _run(self, cursor: Any, sql: str) -> None:
        try:
            cursor.copy_expert(sql, self, size=COPY_READ_SIZE)
        except BaseException as exc:  # surfaced by finish()/abort() on the caller's thread
            self.error = exc
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def read(self, size: int = -1) -> str:
        while self._pos >= len(self._buf):
            item = self._queue.get()
            if item is self._END:
                return ""
            if item is self._ABORT:
                raise _Aborted("batch aborted")
            self._buf, self._pos = item, 0
        end = len(self._buf) if size < 0 else self._pos + size
        out = self._buf[self._pos:end]
        self._pos = end
        return out

    def write(self, text: str) -> None:
        if self.error is not None:
            raise self.error
        if text:
            while True:
                try:
                    self._queue.put(text, timeout=0.5)
                    return
                except queue.Full:
                    if self.error is not None:
                        raise self.error from None

    def finish(self) -> None:
        self._queue.put(self._END)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(self._ABORT, timeout=5)
            self._thread.join(timeout=30)


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


# ---- the transaction ----------------------------------------------------------------------

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
    reasons: dict[str, int] = field(default_factory=dict)
    start_offsets: dict[str, int] = field(default_factory=dict)
    end_offsets: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds

    def mark(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - since
        return now

    def count_reject(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


class OffsetsReusedError(UserError):
    """The broker hands out offsets we already stored for different records."""


def _reused(coord: Coord, stored: object, seen: object) -> OffsetsReusedError:
    topic, partition, offset = coord
    return OffsetsReusedError(
        f"Kafka offset {offset} of {topic}[{partition}] was already ingested as {stored}, but "
        f"the broker now returns {seen} there: the broker lost its data and re-used offsets. "
        "Nothing of this batch was written; `ecom ingest stream --reset-checkpoint` opens a "
        "new topic epoch (see ingestion/README.md, 'Broker data loss')."
    )


def current_epoch(cur: Any, topic: str) -> int:
    """The topic's current epoch: the newest in `ops.ingest_epochs`, 0 if none was opened."""
    cur.execute("select coalesce(max(kafka_epoch), 0) from ops.ingest_epochs "
                "where kafka_topic = %s", (topic,))
    return cur.fetchone()[0]


def start_epoch(conn: Any, topic: str) -> int:
    """Open a new epoch of `topic` (after the broker lost it): 1 + the highest known.

    Under the topic's ingest lock, so no batch is landing meanwhile; commits.
    """
    with conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"ecom-ingest:{topic}",))
        cur.execute(
            "select greatest((select max(kafka_epoch) from ops.ingest_epochs "
            "where kafka_topic = %(t)s), (select max(kafka_epoch) from raw.raw_events "
            "where kafka_topic = %(t)s), (select max(kafka_epoch) from raw.rejected_events "
            "where kafka_topic = %(t)s), 0)",
            {"t": topic})
        epoch = cur.fetchone()[0] + 1
        cur.execute("insert into ops.ingest_epochs (kafka_topic, kafka_epoch) values (%s, %s)",
                    (topic, epoch))
    return epoch


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
                raise _reused(row.coord, f"event {stored}", f"event {row.event.event_id}")
            result.settled += 1
            result.landed.append(row.event)  # re-published: processed-events is at-least-once
        elif row.coord in in_rejected:
            result.settled += 1
        else:
            valid.append(row)
    rejects: list[RejectRow] = []
    for rej in chunk.rejects:
        if rej.coord in in_raw:
            raise _reused(rej.coord, f"event {in_raw[rej.coord]}", "an invalid record")
        if rej.coord in in_rejected:
            size = in_rejected[rej.coord]
            if rej.value is not None and size is not None and size != len(rej.value):
                raise _reused(rej.coord, f"a {size}-byte record", f"{len(rej.value)} bytes")
            result.settled += 1
        else:
            rejects.append(rej)
    return valid, rejects


def _ledger_conflict(query_name: str, batch_id: int, ledger: Any, unsettled: int) -> UserError:
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
                raise _ledger_conflict(result.query_name, result.batch_id, self.ledger[0],
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
        ordered = sorted(self.ranges.items())
        result.start_offsets = {str(p): lo for (_, p), (lo, _) in ordered}
        result.end_offsets = {str(p): hi for (_, p), (_, hi) in ordered}
        self.cur.execute(
            "insert into ops.ingest_batches (query_name, batch_id, start_offsets, end_offsets, "
            "rows_read, rows_valid, rows_rejected, rows_duplicate, kafka_epoch) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (result.query_name, result.batch_id, json.dumps(result.start_offsets),
             json.dumps(result.end_offsets), result.rows_read, result.valid, result.rejected,
             result.duplicates, self.epoch),
        )
        self.mark = result.mark("rejects_ledger", self.mark)

    def abort(self) -> None:
        self.checker.shutdown(wait=True, cancel_futures=True)  # the check thread is idle
        if self.feeder is not None:
            self.feeder.abort()  # stop the COPY before the rollback


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
