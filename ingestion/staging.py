"""Exactly-once landing with the executors writing (`ECOM_SINK_WRITER=executors`).

The executors validate and COPY their records into a staging table of the batch
(`ingest_staging."<query>-<batch>"`, unlogged, created from migration 0060's template;
`ingestion.stage_tasks`), so the driver parses no record. The driver holds ONE
PostgreSQL transaction (as `ingestion.sink` does) and, as each task's summary arrives,
moves that task's rows into the raw tables with set-based SQL:

1. `pg_advisory_xact_lock` per topic (the stream and a replay never interleave), the topic's
   epoch read under it, the ledger `ops.ingest_batches` looked up: a batch already recorded
   only checks that every staged record is settled.
2. Executor-rejected rows whose coordinates hold a valid event in `raw_events`: stop
   (`OffsetsReusedError`, the broker re-used offsets).
3. `INSERT INTO raw.raw_events ... SELECT` the task's valid rows `ON CONFLICT DO NOTHING`
   (the primary key on event_id and the unique Kafka coordinates): within the transaction
   every earlier task's rows count too, so an event id is inserted once. The rows that did
   not go in are few (found by grouping staged and returned coordinates), and classified by
   index look-ups: same coordinates and event in raw = settled (a replay); same
   coordinates, another event = offsets re-used (stop); otherwise a re-sent event id -> a
   `duplicate_event_id` dead letter. Where the batch's offset
   ranges already hold dead letters (a replay), rows at those coordinates are left out.
4. The executor's dead letters into `raw.rejected_events` (`ON CONFLICT DO NOTHING`: a
   replayed one is settled if its size matches, else offsets were re-used).
5. Rows that must not be published (dead letters, settled dead letters) are deleted from
   the staging table; after all tasks: the ledger row, then the one commit.

After the commit the driver publishes what is left in the staging table to
`processed-events` (`publish_staged`: read in one pass, sent by one producer as the driver
writer does, so a crash leaves the same at-least-once window between commit and publish;
a Spark job publishing from the executors took seconds more, a window in which a kill left
half a batch published and the rest late for the realtime windows' watermark), then the
table is dropped. A batch re-run after a crash stages again (each task replaces its rows)
and finds its ledger row. Tables left by a killed driver are
dropped by the next batch of any writer: each in-use table holds a session advisory lock.

Cost on one machine: PostgreSQL parses each row twice (the staging COPY, in parallel on
the executors' connections, then the serial INSERT ... SELECT, which no longer parses
text or JSON); `docs/scaling.md` has the measured comparison with the driver writer.
"""

from __future__ import annotations

import contextlib
import time
from functools import partial
from typing import Any

import psycopg2
import pyarrow as pa

from ecom.config import Settings
from ecom.events import RejectReason
from ingestion.collect import arrow_batches
from ingestion.copy_text import RAW_COLUMNS, REJECTED_COLUMNS
from ingestion.epochs import current_epoch
from ingestion.publish import Publisher
from ingestion.sink import BatchResult, gc_paused, ledger_conflict, record_ledger, reused
from ingestion.stage_tasks import SCHEMA, SUMMARY_DDL, qualified, stage_partition

DUPLICATE = RejectReason.DUPLICATE_EVENT_ID.value
Ranges = dict[tuple[str, int], tuple[int, int]]

_RAW_SELECT = ", ".join(
    "event_id::uuid" if c == "event_id" else ("%(epoch)s" if c == "kafka_epoch" else c)
    for c in RAW_COLUMNS)
_REJECTED_SELECT = ", ".join("%(epoch)s" if c == "kafka_epoch" else c for c in REJECTED_COLUMNS)
#: The rows an INSERT ... ON CONFLICT DO NOTHING skipped are found by grouping the staged
#: and the returned coordinates (a row seen once was skipped): an anti-join with the
#: returning CTE was planned as a nested loop over it (quadratic) for lack of statistics.
#: Rows of a raw table at given coordinates: an index probe per coordinate (a nested loop
#: over `unnest`), whatever the planner guesses of the fresh, never-analyzed staging table
_AT_COORDS = """
    select u.kafka_partition, u.kafka_offset, t.{column}
    from unnest(%(partitions)s::int[], %(offsets)s::bigint[]) as u (kafka_partition, kafka_offset)
    join {table} t on t.kafka_topic = %(topic)s and t.kafka_epoch = %(epoch)s
        and t.kafka_partition = u.kafka_partition and t.kafka_offset = u.kafka_offset
"""
Coords = list[tuple[int, int]]


def table_name(query_name: str, batch_id: int) -> str:
    return f"{query_name}-{batch_id}"


def _lock_key(table: str) -> str:
    return f"ecom-staging:{table}"


def drop_abandoned(cur: Any) -> list[str]:
    """Drop staging tables no running writer holds (left by a killed driver)."""
    cur.execute("select tablename from pg_tables where schemaname = %s "
                "and tablename <> 'batch_template'", (SCHEMA,))
    dropped = []
    for (table,) in cur.fetchall():
        cur.execute("select pg_try_advisory_lock(hashtext(%s))", (_lock_key(table),))
        if cur.fetchone()[0]:
            try:
                cur.execute(f"drop table if exists {qualified(table)}")
                dropped.append(table)
            finally:
                cur.execute("select pg_advisory_unlock(hashtext(%s))", (_lock_key(table),))
    return dropped


class _Mover:
    """The driver's transaction: moves each staged task into the raw tables."""

    def __init__(self, cur: Any, result: BatchResult, table: str) -> None:
        self.cur = cur
        self.result = result
        self.table = qualified(table)
        self.topic = ""
        self.epoch = 0
        self.ledger: Any = None
        self.ranges: Ranges = {}
        self.tasks: list[int] = []
        self.mark = time.perf_counter()

    def _params(self, task: int, **extra: Any) -> dict[str, Any]:
        return {"task": task, "epoch": self.epoch, "topic": self.topic, **extra}

    def _begin(self, topic: str) -> None:
        cur, result = self.cur, self.result
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"ecom-ingest:{topic}",))
        self.topic = topic
        self.epoch = result.epoch = current_epoch(cur, topic)
        cur.execute("select end_offsets from ops.ingest_batches where query_name = %s "
                    "and batch_id = %s", (result.query_name, result.batch_id))
        self.ledger = cur.fetchone()
        result.skipped_batch = self.ledger is not None

    def _holds(self, table: str, ranges: Ranges) -> bool:
        """Whether `table` holds anything of these offset ranges in this epoch."""
        for (topic, partition), (lo, hi) in ranges.items():
            self.cur.execute(
                f"select exists (select 1 from {table} where kafka_topic = %s and "
                "kafka_epoch = %s and kafka_partition = %s and kafka_offset >= %s and "
                "kafka_offset < %s)", (topic, self.epoch, partition, lo, hi))
            if self.cur.fetchone()[0]:
                return True
        return False

    def _at(self, table: str, column: str, coords: Coords) -> dict[tuple[int, int], Any]:
        """`column` of the rows of `table` at these coordinates (this topic and epoch)."""
        if not coords:
            return {}
        self.cur.execute(_AT_COORDS.format(table=table, column=column), self._params(
            0, partitions=[p for p, _ in coords], offsets=[o for _, o in coords]))
        return {(p, o): value for p, o, value in self.cur.fetchall()}

    def task_done(self, summary: dict[str, list[Any]]) -> None:
        """Move one task's staged rows (its summary rows: one per Kafka partition)."""
        result = self.result
        self.mark = result.mark("stage", self.mark)
        task = summary["task"][0]
        ranges: Ranges = {}
        valid = 0
        for topic, partition, lo, hi, rows, rejected in zip(
                summary["topic"], summary["partition"], summary["first_offset"],
                summary["end_offset"], summary["rows"], summary["rejected"], strict=True):
            if not self.topic:
                self._begin(topic)
            elif topic != self.topic:
                raise ValueError(f"a batch reads one topic, got {self.topic} and {topic}")
            ranges[(topic, partition)] = (lo, hi)
            old = self.ranges.get((topic, partition))
            self.ranges[(topic, partition)] = (lo, hi) if old is None else (
                min(old[0], lo), max(old[1], hi))
            result.rows_read += rows
            valid += rows - rejected
        self.tasks.append(task)
        if self.ledger is not None:
            self._check_settled(task)
        else:
            in_raw = self._holds("raw.raw_events", ranges)
            in_rejected = self._holds("raw.rejected_events", ranges)
            if in_raw:
                self._no_reject_over_an_event(task)
            self._insert_valid(task, valid, in_rejected)
            self._insert_rejects(task)
        self.mark = result.mark("move", self.mark)

    def _staged(self, task: int, where: str) -> list[tuple[Any, ...]]:
        self.cur.execute(f"select kafka_partition, kafka_offset, event_id, "
                         f"reason_code is null from {self.table} where task = %s and {where}",
                         (task,))
        return self.cur.fetchall()

    def _no_reject_over_an_event(self, task: int) -> None:
        rejects = [(p, o) for p, o, _, _ in self._staged(task, "reason_code is not null")]
        for (partition, offset), event_id in self._at("raw.raw_events", "event_id::text",
                                                      rejects).items():
            raise reused((self.topic, partition, offset), f"event {event_id}",
                         "an invalid record")

    def _insert_valid(self, task: int, staged_valid: int, guard_rejected: bool) -> None:
        """INSERT the valid rows; classify those that did not go in (see the docstring)."""
        cur, result = self.cur, self.result
        guard = ("and not exists (select 1 from raw.rejected_events x where "
                 "x.kafka_topic = s.kafka_topic and x.kafka_epoch = %(epoch)s and "
                 "x.kafka_partition = s.kafka_partition and x.kafka_offset = s.kafka_offset)"
                 ) if guard_rejected else ""
        cur.execute(f"""
            with landed as (
                insert into raw.raw_events ({", ".join(RAW_COLUMNS)})
                select {_RAW_SELECT} from {self.table} s
                where s.task = %(task)s and s.reason_code is null {guard}
                on conflict do nothing
                returning kafka_partition, kafka_offset
            )
            select kafka_partition, kafka_offset, max(event_id) from (
                select kafka_partition, kafka_offset, event_id from {self.table}
                where task = %(task)s and reason_code is null
                union all
                select kafka_partition, kafka_offset, null from landed
            ) as staged_or_landed
            group by kafka_partition, kafka_offset having count(*) = 1
            """, self._params(task))
        skipped = cur.fetchall()
        result.valid += staged_valid - len(skipped)
        if not skipped:
            return
        coords = [(p, o) for p, o, _ in skipped]
        at_coords = self._at("raw.raw_events", "event_id::text", coords)
        in_rejected = self._at("raw.rejected_events", "kafka_offset", coords)
        unpublished: Coords = []
        candidates: list[tuple[int, int, str]] = []
        for partition, offset, event_id in skipped:
            stored = at_coords.get((partition, offset))
            if stored is not None:
                if stored != event_id:
                    raise reused((self.topic, partition, offset), f"event {stored}",
                                 f"event {event_id}")
                result.settled += 1  # landed before: published again (at-least-once)
            elif (partition, offset) in in_rejected:
                result.settled += 1
                unpublished.append((partition, offset))
            else:
                candidates.append((partition, offset, event_id))
        if candidates:
            cur.execute("select event_id::text, kafka_partition, kafka_offset from "
                        "raw.raw_events where event_id = any(%s::uuid[])",
                        ("{" + ",".join(e for _, _, e in candidates) + "}",))
            where = {e: (p, o) for e, p, o in cur.fetchall()}
            dups = [(p, o, f"event_id {e} already landed at partition {where[e][0]} "
                           f"offset {where[e][1]}") for p, o, e in candidates]
            cur.execute(f"""
                insert into raw.rejected_events ({", ".join(REJECTED_COLUMNS)})
                select kafka_topic, s.kafka_partition, s.kafka_offset, kafka_key,
                       kafka_timestamp, raw_value, raw_size_bytes, event_id,
                       '{DUPLICATE}', d.message, %(epoch)s
                from unnest(%(partitions)s::int[], %(offsets)s::bigint[], %(messages)s::text[])
                    as d (kafka_partition, kafka_offset, message)
                join {self.table} s on s.task = %(task)s
                    and s.kafka_partition = d.kafka_partition
                    and s.kafka_offset = d.kafka_offset
                """, self._params(task, partitions=[p for p, _, _ in dups],
                                  offsets=[o for _, o, _ in dups],
                                  messages=[m for _, _, m in dups]))
            result.rejected += len(dups)
            result.duplicates += len(dups)
            result.count_reject(DUPLICATE, len(dups))
            unpublished.extend((p, o) for p, o, _ in dups)
        if unpublished:
            self._unstage(task, unpublished)

    def _unstage(self, task: int, coords: Coords) -> None:
        """Delete these staged rows: they are not to be published."""
        self.cur.execute(
            f"delete from {self.table} s using unnest(%(partitions)s::int[], "
            "%(offsets)s::bigint[]) as d (kafka_partition, kafka_offset) "
            "where s.task = %(task)s and s.kafka_partition = d.kafka_partition "
            "and s.kafka_offset = d.kafka_offset",
            self._params(task, partitions=[p for p, _ in coords],
                         offsets=[o for _, o in coords]))

    def _insert_rejects(self, task: int) -> None:
        """The executor's dead letters; a replayed one must have the size it had."""
        cur, result = self.cur, self.result
        cur.execute(f"""
            with written as (
                insert into raw.rejected_events ({", ".join(REJECTED_COLUMNS)})
                select {_REJECTED_SELECT} from {self.table} s
                where s.task = %(task)s and s.reason_code is not null
                on conflict do nothing
                returning kafka_partition, kafka_offset, reason_code
            )
            select reason_code, count(*), null::int, null::bigint, null::int
            from written group by reason_code
            union all
            select null, null, kafka_partition, kafka_offset, max(raw_size_bytes) from (
                select kafka_partition, kafka_offset, raw_size_bytes from {self.table}
                where task = %(task)s and reason_code is not null
                union all
                select kafka_partition, kafka_offset, null from written
            ) as staged_or_written
            group by kafka_partition, kafka_offset having count(*) = 1
            """, self._params(task))
        skipped: list[tuple[int, int, int | None]] = []
        for reason, n, partition, offset, size in cur.fetchall():
            if reason is not None:  # new dead letters by reason
                result.rejected += n
                result.count_reject(reason, n)
            else:
                skipped.append((partition, offset, size))
        if skipped:
            stored = self._at("raw.rejected_events", "raw_size_bytes",
                              [(p, o) for p, o, _ in skipped])
            for partition, offset, size in skipped:
                before = stored.get((partition, offset))
                if size is not None and before is not None and before != size:
                    raise reused((self.topic, partition, offset), f"a {before}-byte record",
                                 f"{size} bytes")
                result.settled += 1
        cur.execute(f"delete from {self.table} where task = %s and reason_code is not null",
                    (task,))

    def _check_settled(self, task: int) -> None:
        """A batch already in the ledger: every staged row must have landed; keep only
        the events to publish again."""
        result = self.result
        staged = self._staged(task, "true")
        coords = [(p, o) for p, o, _, _ in staged]
        in_raw = self._at("raw.raw_events", "event_id::text", coords)
        in_rejected = self._at("raw.rejected_events", "kafka_offset", coords)
        unpublished: Coords = []
        unsettled = 0
        for partition, offset, event_id, valid in staged:
            stored = in_raw.get((partition, offset))
            if stored is not None and valid and stored == event_id:
                continue
            if stored is None and (partition, offset) in in_rejected:
                unpublished.append((partition, offset))
            else:
                unsettled += 1
        if unsettled:
            raise ledger_conflict(result.query_name, result.batch_id, self.ledger[0], unsettled)
        result.settled += len(staged)
        if unpublished:
            self._unstage(task, unpublished)

    def finish(self) -> None:
        result = self.result
        if result.skipped_batch or result.rows_read == 0:
            return
        record_ledger(self.cur, result, self.ranges, self.epoch)
        self.mark = result.mark("rejects_ledger", self.mark)


def publish_staged(conn: Any, table: str, publisher: Publisher) -> int:
    """Send the batch's landed events (what the move left in its staging table) to
    processed-events; returns once every message is acknowledged."""
    with conn, conn.cursor(name="publish_staged") as cur:
        cur.itersize = 20_000
        cur.execute(f"select user_id, coalesce(processed, raw_value) from {qualified(table)} "
                    "where reason_code is null")
        return publisher.publish_messages((user.encode(), value.encode()) for user, value in cur)


def land_staged(settings: Settings, conn: Any, check_conn: Any, query_name: str,
                batch_id: int, df: Any, publisher: Publisher | None = None) -> BatchResult:
    """Land the micro-batch `df` (the source's columns) with the executors writing (see the
    module docstring). Commits or raises; then publishes with `publisher`, if given."""
    started = time.perf_counter()
    result = BatchResult(query_name, batch_id)
    table = table_name(query_name, batch_id)
    lock = _lock_key(table)
    with check_conn.cursor() as cur:
        drop_abandoned(cur)
        cur.execute("select pg_advisory_lock(hashtext(%s))", (lock,))
    try:
        with check_conn.cursor() as cur:
            cur.execute(f"drop table if exists {qualified(table)}")
            cur.execute(f"create unlogged table {qualified(table)} "
                        f"(like {SCHEMA}.batch_template including all)")
        stage = partial(stage_partition, settings=settings, table=table,
                        now_ms=int(time.time() * 1000))
        summaries = df.mapInArrow(stage, SUMMARY_DDL)
        with gc_paused(), conn, conn.cursor() as cur:
            mover = _Mover(cur, result, table)
            for batch in arrow_batches(summaries):
                for task_rows in _by_task(batch):
                    mover.task_done(task_rows)
            mover.finish()
        result.mark("commit", mover.mark)
        if mover.tasks:
            with check_conn.cursor() as cur:  # the newest event this batch landed
                cur.execute(f"select max(event_timestamp) from {qualified(table)} "
                            "where reason_code is null")
                result.newest_event_at = cur.fetchone()[0]
        if publisher is not None and mover.tasks:
            t0 = time.perf_counter()
            result.published = publish_staged(conn, table, publisher)
            result.timings["publish"] = time.perf_counter() - t0
    finally:
        # if PostgreSQL went away, its error is the one to report; the next batch drops
        # the table (nobody holds its lock any more)
        with contextlib.suppress(psycopg2.Error), check_conn.cursor() as cur:
            cur.execute(f"drop table if exists {qualified(table)}")
            cur.execute("select pg_advisory_unlock(hashtext(%s))", (lock,))
    result.seconds = time.perf_counter() - started
    return result


def _by_task(batch: pa.RecordBatch) -> list[dict[str, list[Any]]]:
    """A summary batch's rows grouped by task (a task sends all its rows in one batch)."""
    rows = batch.to_pydict()
    out: dict[int, dict[str, list[Any]]] = {}
    for i, task in enumerate(rows["task"]):
        group = out.setdefault(task, {k: [] for k in rows})
        for k, values in rows.items():
            group[k].append(values[i])
    return list(out.values())
