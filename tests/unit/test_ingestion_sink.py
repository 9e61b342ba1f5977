"""The sink's pure parts: validating a batch, in-batch duplicates, COPY text escaping."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pytest

from ecom.events import RejectReason
from ingestion.copy_feed import CopyFeeder
from ingestion.copy_text import RAW_COLUMNS, REJECTED_COLUMNS, raw_copy_text, rejected_copy_text
from ingestion.records import KafkaRecords, arrow_chunks, split_records
from ingestion.sink import BatchResult, OffsetsReusedError, _settle

NOW_MS = 1_795_000_000_000
TS = "2026-11-18T10:00:00.000Z"


def valid(event_id: str, **extra: object) -> bytes:
    obj = {"event_id": event_id, "user_id": "u1", "session_id": "s1", "event_type": "page_view",
           "event_timestamp": TS, "page_url": "https://x/\tp", "user_agent": "UA\\1",
           "ip_address": "10.0.0.1"}
    obj.update(extra)
    return json.dumps(obj).encode()


ID1 = "00000000-0000-4000-8000-000000000001"
ID2 = "00000000-0000-4000-8000-000000000002"


def records(values: list[bytes | None], partitions: list[int] | None = None) -> KafkaRecords:
    n = len(values)
    return KafkaRecords(["t"] * n, partitions or [0] * n, list(range(n)), [NOW_MS] * n,
                        ["k"] * n, values)


def test_split_records_separates_valid_rejected_and_in_batch_duplicates() -> None:
    batch = records([valid(ID1), b"{oops", valid(ID2), valid(ID1), None])
    split = split_records(batch, NOW_MS)
    assert [r.coord[2] for r in split.valid] == [0, 2]
    reasons = {r.coord[2]: r.reject.reason for r in split.rejects}
    assert reasons == {1: RejectReason.INVALID_JSON, 3: RejectReason.DUPLICATE_EVENT_ID,
                       4: RejectReason.INVALID_JSON}
    dup = next(r for r in split.rejects if r.coord[2] == 3)
    assert "partition 0 offset 0" in dup.reject.message and dup.reject.event_id == ID1


def test_duplicates_are_tracked_across_chunks_of_one_batch() -> None:
    seen: dict = {}
    split_records(records([valid(ID1)]), NOW_MS, seen)
    second = split_records(records([valid(ID1)], partitions=[1]), NOW_MS, seen)
    assert not second.valid and second.rejects[0].reject.reason is \
        RejectReason.DUPLICATE_EVENT_ID


class LandedCoords:
    """What raw holds at some coordinates, as the sink's checker would report it."""

    def __init__(self, raw: dict, rejected: dict) -> None:
        self.tables = {"raw.raw_events": raw, "raw.rejected_events": rejected}

    def coords(self, table: str, _ranges: object, _extra: str, _epoch: int) -> dict:
        return self.tables[table]


def test_a_replay_that_reads_twins_in_another_order_settles_both() -> None:
    """The stream landed p2's copy first (an earlier micro-batch) and p0's as its duplicate;
    a replay of both in one batch reads p0 first: both records are settled, nothing raised."""
    batch = KafkaRecords(["t", "t"], [0, 2], [7, 9], [NOW_MS] * 2, ["k"] * 2,
                         [valid(ID1), valid(ID1)])
    split = split_records(batch, NOW_MS)
    assert [r.coord for r in split.valid] == [("t", 0, 7)]
    landed = LandedCoords(raw={("t", 2, 9): ID1}, rejected={("t", 0, 7): 1})
    result = BatchResult("replay", 0)
    assert _settle(split, landed, {}, result, 0) == ([], [])  # type: ignore[arg-type]
    assert result.settled == 2
    # another event at a landed event's coordinates is still the broker re-using offsets
    landed = LandedCoords(raw={("t", 2, 9): ID2}, rejected={("t", 0, 7): 1})
    with pytest.raises(OffsetsReusedError):
        _settle(split, landed, {}, BatchResult("replay", 0), 0)  # type: ignore[arg-type]


def test_future_rule_uses_the_kafka_timestamp_when_older_than_now() -> None:
    future = "2026-11-18T10:30:00.000Z"  # 30 min after TS
    kafka_ms = 1_763_460_000_000  # 2025-11-18T10:00:00Z: the event claims a year later
    batch = KafkaRecords(["t"], [0], [0], [kafka_ms], [None], [valid(ID1, event_timestamp=future)])
    split = split_records(batch, now_ms=NOW_MS)
    assert split.rejects[0].reject.reason is RejectReason.FUTURE_TIMESTAMP


def _parse_copy(text: str, columns: tuple[str, ...]) -> list[dict[str, str | None]]:
    rows = []
    for line in text.splitlines():
        fields = line.split("\t")
        assert len(fields) == len(columns), line
        decoded = []
        for f in fields:
            if f == "\\N":
                decoded.append(None)
                continue
            out, i = [], 0
            while i < len(f):
                if f[i] == "\\":
                    out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[f[i + 1]])
                    i += 2
                else:
                    out.append(f[i])
                    i += 1
            decoded.append("".join(out))
        rows.append(dict(zip(columns, decoded, strict=True)))
    return rows


def test_copy_text_round_trips_tabs_newlines_and_backslashes() -> None:
    raw = valid(ID1, user_agent="a\\b\n", extra="x\ty").replace(b", ", b",\n ")
    split = split_records(records([raw]), NOW_MS)
    row = _parse_copy(raw_copy_text(split.valid), RAW_COLUMNS)[0]
    assert row["event_id"] == ID1 and row["raw_data"] == raw.decode()
    assert row["user_agent"] == "a\\b\n" and row["page_url"] == "https://x/\tp"
    assert row["price"] is None and row["kafka_partition"] == "0"
    assert row["event_timestamp"] == "2026-11-18T10:00:00+00:00"


def test_rejected_copy_text_keeps_the_original_bytes_as_text() -> None:
    split = split_records(records([b"\x00bad\tjson\xff"]), NOW_MS)
    row = _parse_copy(rejected_copy_text(split.rejects), REJECTED_COLUMNS)[0]
    assert row["raw_value"] == "\ufffdbad\tjson\ufffd"
    assert row["raw_size_bytes"] == "10" and row["reason_code"] == "invalid_json"
    assert row["event_id"] is None


def test_arrow_chunks_convert_the_source_schema() -> None:
    table = pa.table({
        "topic": ["t", "t", "t"], "partition": pa.array([0, 0, 1], pa.int32()),
        "offset": pa.array([5, 6, 0], pa.int64()),
        "timestamp": pa.array([NOW_MS * 1000, None, NOW_MS * 1000], pa.timestamp("us", "UTC")),
        "key": ["a", None, "c"], "value": pa.array([b"1", b"2", None], pa.binary()),
    })
    chunks = list(arrow_chunks(table, rows=2))
    assert [len(c) for c in chunks] == [2, 1]
    assert chunks[0].timestamp_ms == [NOW_MS, None] and chunks[1].value == [None]
    assert chunks[0].offset_ranges() == {("t", 0): (5, 7)}


class _FakeCursor:
    def __init__(self) -> None:
        self.data = io.StringIO()

    def copy_expert(self, sql: str, file: object, size: int) -> None:
        while True:
            chunk = file.read(7)  # type: ignore[attr-defined]
            if not chunk:
                return
            self.data.write(chunk)


def test_copy_feeder_streams_every_chunk_in_order() -> None:
    cur = _FakeCursor()
    feeder = CopyFeeder(cur, "copy x from stdin")
    for i in range(50):
        feeder.write(f"row {i}\n")
    feeder.finish()
    assert cur.data.getvalue() == "".join(f"row {i}\n" for i in range(50))


def test_canonical_events_are_copied_and_published_as_sent() -> None:
    from ingestion.publish import processed_json

    raw = (b'{"event_id":"' + ID1.encode() + b'",\n"user_id":"u1","session_id":"s1",'
           b'"event_type":"purchase","event_timestamp":"2026-11-18T10:00:00.000Z",'
           b'"product_id":"P1","category":"books","price":12.5,"quantity":2,'
           b'"page_url":"https://x/p","user_agent":"UA","ip_address":"10.0.0.1"}')
    split = split_records(records([raw]), NOW_MS)
    event = split.valid[0].event
    assert event.canonical
    row = _parse_copy(raw_copy_text(split.valid), RAW_COLUMNS)[0]
    assert row["raw_data"] == raw.decode() and row["event_timestamp"] == TS
    assert (row["price"], row["quantity"], row["category"]) == ("12.5", "2", "books")
    assert processed_json(event) == raw


def test_non_canonical_events_are_published_cleaned() -> None:
    from ingestion.publish import processed_json

    raw = valid(ID1.upper(), event_timestamp="2026-11-18T12:00:00+02:00", extra_field=1)
    event = split_records(records([raw]), NOW_MS).valid[0].event
    assert not event.canonical
    published = json.loads(processed_json(event))
    assert published["event_id"] == ID1 and "extra_field" not in published
    assert published["event_timestamp"] == TS and published["user_agent"] == "UA\\1"


def test_gc_paused_restores_the_collector_and_nests() -> None:
    import gc

    from ingestion.sink import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: still paused, and the outer one re-enables
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("batch failed")
    assert gc.isenabled()


def test_staging_lines_carry_every_column_of_the_template() -> None:
    """One staging row per record: a valid event's typed columns (its text twice: raw_value
    for a possible duplicate's dead letter, raw_data for jsonb), or a dead letter's reason."""
    from ingestion.copy_text import STAGING_COLUMNS, staging_line
    from ingestion.validation import validate

    good = valid(ID1, user_agent="tab\there")
    rows = {}
    for offset, value in enumerate((good, b"{oops")):
        line = staging_line("7", "t", 0, offset, "k", "\\N", value, validate(value, NOW_MS))
        rows[offset] = _parse_copy(line, STAGING_COLUMNS)[0]
    ok, bad = rows[0], rows[1]
    assert ok["task"] == "7" and ok["reason_code"] is None and ok["event_id"] == ID1
    assert ok["raw_value"] == ok["raw_data"] == good.decode()
    assert ok["user_agent"] == "tab\there" and ok["raw_size_bytes"] == str(len(good))
    assert ok["processed"] is not None  # not canonical (spaces, no .mmmZ): re-encoded
    assert bad["reason_code"] == "invalid_json" and bad["raw_value"] == "{oops"
    assert bad["user_id"] is None and bad["raw_data"] is None


def test_a_canonical_event_is_published_from_its_staged_text() -> None:
    from ingestion.copy_text import STAGING_COLUMNS, staging_line
    from ingestion.validation import validate

    raw = (b'{"event_id":"' + ID1.encode() + b'","user_id":"u1","session_id":"s1",'
           b'"event_type":"page_view","event_timestamp":"2026-11-18T10:00:00.000Z",'
           b'"page_url":"https://x/p","user_agent":"UA","ip_address":"10.0.0.1"}')
    result = validate(raw, NOW_MS)
    row = _parse_copy(staging_line("0", "t", 1, 2, None, "\\N", raw, result),
                      STAGING_COLUMNS)[0]
    assert result.canonical and row["processed"] is None  # coalesce(processed, raw_value)
    assert row["raw_value"] == raw.decode()
