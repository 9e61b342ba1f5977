"""Rows of `raw.raw_events`, `raw.rejected_events` and the executors' staging tables
(`ingest_staging`, see `ingestion.staging`) in PostgreSQL's COPY text format.

Each `*_line` function renders one row ending in a newline, so COPY text is lines joined.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from ingestion.publish import processed_json
from ingestion.records import RejectRow, ValidRow
from ingestion.validation import Reject, ValidEvent, raw_text

RAW_COLUMNS = (
    "event_id", "user_id", "session_id", "event_type", "event_timestamp", "product_id",
    "category", "price", "quantity", "page_url", "user_agent", "ip_address", "raw_data",
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_epoch",
)
REJECTED_COLUMNS = (
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "kafka_timestamp",
    "raw_value", "raw_size_bytes", "event_id", "reason_code", "reason_message", "kafka_epoch",
)
#: the columns of migration 0060's ingest_staging.batch_template, in order
STAGING_COLUMNS = (
    "task", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "kafka_timestamp",
    "raw_size_bytes", "raw_value", "reason_code", "reason_message", "event_id", "user_id",
    "session_id", "event_type", "event_timestamp", "product_id", "category", "price",
    "quantity", "page_url", "user_agent", "ip_address", "raw_data", "processed",
)
NULL = "\\N"


def text(value: str | None) -> str:
    """One value in COPY text format (`\\N` for NULL; backslash, tab, CR, LF escaped)."""
    if value is None:
        return NULL
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\n" in value or "\r" in value or "\t" in value:
        value = value.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return value


def timestamp_ms(ms: int | None) -> str:
    if ms is None:
        return NULL
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _num(value: float | int | None) -> str:
    return NULL if value is None else repr(value)


def raw_line(e: ValidEvent, topic: str, partition: int, offset: int, kafka_ts: str,
             epoch: str) -> str:
    """One `raw.raw_events` row (RAW_COLUMNS); `kafka_ts` from `timestamp_ms`."""
    if e.canonical:  # no escapes in the JSON: no string needs COPY escaping
        raw = e.raw_json
        if "\n" in raw or "\r" in raw or "\t" in raw:
            raw = text(raw)
        return "\t".join((
            e.event_id, e.user_id, e.session_id, e.event_type, e.timestamp_text,
            e.product_id or NULL, e.category or NULL, _num(e.price), _num(e.quantity),
            e.page_url, e.user_agent, e.ip_address, raw, topic, str(partition), str(offset),
            kafka_ts, epoch,
        )) + "\n"
    return "\t".join((
        e.event_id, text(e.user_id), text(e.session_id), e.event_type,
        e.event_timestamp.isoformat(), text(e.product_id), text(e.category),
        _num(e.price), _num(e.quantity), text(e.page_url), text(e.user_agent),
        text(e.ip_address), text(e.raw_json), text(topic), str(partition), str(offset),
        kafka_ts, epoch,
    )) + "\n"


def rejected_line(topic: str, partition: int, offset: int, key: str | None, kafka_ts: str,
                  value: bytes | None, event_id: str | None, reason: str, message: str,
                  epoch: str) -> str:
    """One `raw.rejected_events` row (REJECTED_COLUMNS): the record's bytes kept as text."""
    return "\t".join((
        text(topic), str(partition), str(offset), text(key), kafka_ts, text(raw_text(value)),
        NULL if value is None else str(len(value)), text(event_id), reason, text(message),
        epoch,
    )) + "\n"


def staging_line(task: str, topic: str, partition: int, offset: int, key: str | None,
                 kafka_ts: str, value: bytes | None, result: ValidEvent | Reject) -> str:
    """One row of a staging table (STAGING_COLUMNS): a valid event's columns, or a dead
    letter's reason. A valid record's text is kept twice: `raw_value` (text, in case it
    turns out a duplicate: a dead letter keeps the bytes it got) and `raw_data` (jsonb,
    parsed here by the executor's connection rather than in the driver's transaction)."""
    size = NULL if value is None else str(len(value))
    head = (task, text(topic), str(partition), str(offset), text(key), kafka_ts, size)
    if isinstance(result, Reject):
        return "\t".join((
            *head, text(raw_text(value)), result.reason.value, text(result.message),
            text(result.event_id), *(NULL,) * 13,
        )) + "\n"
    e = result
    raw = e.raw_json  # the value decoded: valid records are UTF-8 without NUL
    if e.canonical:  # no backslash; the text is the processed-events message itself
        if "\n" in raw or "\r" in raw or "\t" in raw:
            raw = text(raw)
        return "\t".join((
            *head, raw, NULL, NULL, e.event_id, e.user_id, e.session_id, e.event_type,
            e.timestamp_text, e.product_id or NULL, e.category or NULL, _num(e.price),
            _num(e.quantity), e.page_url, e.user_agent, e.ip_address, raw, NULL,
        )) + "\n"
    raw = text(raw)
    return "\t".join((
        *head, raw, NULL, NULL, e.event_id, text(e.user_id), text(e.session_id), e.event_type,
        e.event_timestamp.isoformat(), text(e.product_id), text(e.category), _num(e.price),
        _num(e.quantity), text(e.page_url), text(e.user_agent), text(e.ip_address), raw,
        text(processed_json(e).decode()),
    )) + "\n"


def raw_copy_text(rows: Iterable[ValidRow], epoch: int = 0) -> str:
    """`raw.raw_events` rows of topic epoch `epoch` in COPY text format."""
    epoch_text = str(epoch)
    return "".join(raw_line(row.event, *row.coord, timestamp_ms(row.timestamp_ms), epoch_text)
                   for row in rows)


def rejected_copy_text(rows: Iterable[RejectRow], epoch: int = 0) -> str:
    """`raw.rejected_events` rows of topic epoch `epoch` in COPY text format."""
    epoch_text = str(epoch)
    return "".join(rejected_line(
        *row.coord, row.key, timestamp_ms(row.timestamp_ms), row.value, row.reject.event_id,
        row.reject.reason.value, row.reject.message, epoch_text) for row in rows)


def copy_sql(table: str, columns: Iterable[str]) -> str:
    return f"copy {table} ({', '.join(columns)}) from stdin"
