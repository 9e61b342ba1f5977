"""Rows of `raw.raw_events` and `raw.rejected_events` in PostgreSQL's COPY text format."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from ingestion.records import RejectRow, ValidRow
from ingestion.validation import raw_text

RAW_COLUMNS = (
    "event_id", "user_id", "session_id", "event_type", "event_timestamp", "product_id",
    "category", "price", "quantity", "page_url", "user_agent", "ip_address", "raw_data",
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_epoch",
)
REJECTED_COLUMNS = (
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "kafka_timestamp",
    "raw_value", "raw_size_bytes", "event_id", "reason_code", "reason_message", "kafka_epoch",
)


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
