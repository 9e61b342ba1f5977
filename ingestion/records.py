"""Kafka records as the sink receives them, and their validation into valid rows and dead
letters (pure: no I/O, so unit tests call it directly)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ecom.events import RejectReason
from ingestion.validation import Reject, ValidEvent, validate

#: rows per chunk a batch is validated and written in (COPY streams one while the next validates)
CHUNK_ROWS = 20_000

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
