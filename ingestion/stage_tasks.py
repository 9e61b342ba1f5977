"""What Spark's executors run when they write a micro-batch (`ECOM_SINK_WRITER=executors`).

`stage_partition` is a `mapInArrow` function over the Kafka source's partitions: each task
validates its records against the contract (`ingestion.validation`), renders them as rows
of the batch's staging table (`ingestion.copy_text.staging_line`) and COPYs them in, in
one transaction of its own that first deletes the rows an earlier attempt of the same task
left (under an advisory lock per task, so two attempts never interleave). It returns one
summary row per Kafka partition it read: the driver moves that task's rows into the raw
tables as soon as the summary arrives (`ingestion.staging`).

Tasks connect to PostgreSQL as the loader with the settings the driver ships in the task
closure (see docs/scaling.md for securing that channel on a shared cluster).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from ecom.config import Settings
from ecom.db import connect
from ingestion.copy_feed import CopyFeeder
from ingestion.copy_text import STAGING_COLUMNS, copy_sql, staging_line, timestamp_ms
from ingestion.records import KafkaRecords
from ingestion.sink import gc_paused
from ingestion.validation import Reject, validate

SCHEMA = "ingest_staging"
#: one row per (task, Kafka partition) a task staged
SUMMARY_DDL = ("task int, topic string, partition int, first_offset long, end_offset long, "
               "rows long, rejected long")
SUMMARY_SCHEMA = pa.schema([
    ("task", pa.int32()), ("topic", pa.string()), ("partition", pa.int32()),
    ("first_offset", pa.int64()), ("end_offset", pa.int64()), ("rows", pa.int64()),
    ("rejected", pa.int64()),
])


def qualified(table: str) -> str:
    """The staging table's SQL name (table names are generated: letters, digits, dashes)."""
    return f'{SCHEMA}."{table}"'


def render(records: KafkaRecords, task: str, now_ms: int,
           summary: dict[tuple[str, int], list[int]]) -> str:
    """Validate records and render them as staging rows; count them into `summary`
    ((topic, partition) -> [first offset, end offset, rows, rejected])."""
    lines = []
    ts_texts: dict[int | None, str] = {}
    for topic, partition, offset, ts, key, value in zip(
        records.topic, records.partition, records.offset, records.timestamp_ms, records.key,
        records.value, strict=True,
    ):
        kafka_ts = ts_texts.get(ts)
        if kafka_ts is None:
            kafka_ts = ts_texts[ts] = timestamp_ms(ts)
        result = validate(value, now_ms if ts is None or ts > now_ms else ts)
        lines.append(staging_line(task, topic, partition, offset, key, kafka_ts, value, result))
        counts = summary.get((topic, partition))
        if counts is None:
            counts = summary[(topic, partition)] = [offset, offset + 1, 0, 0]
        elif offset < counts[0]:
            counts[0] = offset
        elif offset >= counts[1]:
            counts[1] = offset + 1
        counts[2] += 1
        if isinstance(result, Reject):
            counts[3] += 1
    return "".join(lines)


def stage_partition(batches: Iterable[Any], settings: Settings, table: str, now_ms: int
                    ) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: stage this task's records (see the module docstring)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    task = context.partitionId() if context is not None else 0
    summary: dict[tuple[str, int], list[int]] = {}
    conn = connect(settings, "loader")
    feeder: CopyFeeder | None = None
    try:
        with gc_paused(), conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{table}:{task}",))
            cur.execute(f"delete from {qualified(table)} where task = %s", (task,))
            for batch in batches:
                if not batch.num_rows:
                    continue
                text = render(KafkaRecords.from_arrow(batch), str(task), now_ms, summary)
                if feeder is None:  # COPY streams this chunk while the next one validates
                    feeder = CopyFeeder(cur, copy_sql(qualified(table), STAGING_COLUMNS))
                feeder.write(text)
            if feeder is not None:
                feeder.finish()
                feeder = None
    except BaseException:
        if feeder is not None:
            feeder.abort()
        raise
    finally:
        conn.close()
    keys = sorted(summary)
    yield pa.RecordBatch.from_arrays([
        pa.array([task] * len(keys), pa.int32()),
        pa.array([t for t, _ in keys], pa.string()),
        pa.array([p for _, p in keys], pa.int32()),
        *(pa.array([summary[k][i] for k in keys], pa.int64()) for i in range(4)),
    ], schema=SUMMARY_SCHEMA)
