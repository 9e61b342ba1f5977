"""Validate one Kafka record against the event contract (`ecom.events`): pure functions, no I/O.

`validate(value, reference_ms)` returns either a `ValidEvent` (cleaned column values, ready
for `raw.raw_events`) or a `Reject` (reason code from `RejectReason`, a message, and the
event_id text when one could be read). Checks run in a fixed order, so a record with several
problems always gets the same reason:

    oversize -> invalid_json -> missing_field -> wrong_type -> unknown_event_type
    -> invalid_event_id -> invalid_timestamp -> future_timestamp -> negative_price
    -> invalid_quantity

`duplicate_event_id` is decided later by the sink, which knows what already landed.

Besides the contract, a valid event must be storable by PostgreSQL as it is: JSON that
`jsonb` refuses (NaN/Infinity, `\\u0000`, lone surrogates) is `invalid_json`, and numbers
that overflow the columns (`numeric(12,2)`, `integer`) are `wrong_type`/`invalid_quantity`,
so one odd record can never fail a whole micro-batch.

Speed matters (this runs once per event on the driver). A fast path decodes with msgspec
straight into a typed struct (types checked in C) and accepts only events that pass every
rule; anything else takes the reference path (`json.loads` + `check_event`), which alone
decides reject reasons. So the fast path can change speed, never verdicts (unit-tested).
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from ecom.events import (
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW_SECONDS,
    PRODUCT_FIELDS,
    QUANTITY_EVENT_TYPES,
    REQUIRED_FIELDS,
    RejectReason,
)

#: Largest price `numeric(12, 2)` can hold, and largest `integer` quantity.
MAX_PRICE = 9_999_999_999.99
MAX_QUANTITY = 2_147_483_647
_EVENT_TYPES = frozenset(EVENT_TYPES)
_STRING_FIELDS = (*REQUIRED_FIELDS, "product_id", "category")
_FUTURE_SKEW_MS = MAX_FUTURE_SKEW_SECONDS * 1000


class ValidEvent(NamedTuple):
    """A valid event's cleaned values, in `raw.raw_events` column order (plus raw text)."""

    event_id: str  # canonical lower-case UUID
    user_id: str
    session_id: str
    event_type: str
    event_timestamp: datetime  # timezone-aware, UTC
    product_id: str | None
    category: str | None
    price: float | int | None
    quantity: int | None
    page_url: str
    user_agent: str
    ip_address: str
    raw_json: str  # the record's text, stored as `raw_data`
    #: True when raw_json already is the cleaned event: contract fields only, canonical
    #: event_id and timestamp text (`timestamp_text`), no escapes. Lets the sink and the
    #: publisher reuse the text instead of re-encoding it.
    canonical: bool = False
    timestamp_text: str = ""


class Reject(NamedTuple):
    """Why a record is a dead letter."""

    reason: RejectReason
    message: str
    event_id: str | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON for PostgreSQL")


def _has_unstorable_text(obj: Any) -> str | None:
    """Describe a string PostgreSQL cannot store (NUL, lone surrogate) anywhere in obj."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "contains \\u0000, which PostgreSQL text and jsonb cannot store"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "contains a lone UTF-16 surrogate escape, which is not valid Unicode"
    return None


def parse_json(value: bytes) -> tuple[dict[str, Any] | None, str | Reject]:
    """Decode and parse a record value -> (object, text) or (None, Reject)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, Reject(RejectReason.INVALID_JSON, f"value is not UTF-8 ({exc.reason})")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError, and so is _reject_constant's
        return None, Reject(RejectReason.INVALID_JSON, f"not valid JSON: {exc}"[:300])
    except RecursionError:
        return None, Reject(RejectReason.INVALID_JSON, "JSON nested too deeply")
    if not isinstance(obj, dict):
        return None, Reject(
            RejectReason.INVALID_JSON, f"JSON value is a {type(obj).__name__}, not an object"
        )
    if "\\u" in text:  # only escapes can smuggle in NUL or surrogates: skip the walk otherwise
        problem = _has_unstorable_text(obj)
        if problem:
            return None, Reject(RejectReason.INVALID_JSON, problem, _event_id_text(obj))
    return obj, text


def _event_id_text(obj: dict[str, Any]) -> str | None:
    """The record's event_id as text (for dead-letter tracing), whatever its type."""
    event_id = obj.get("event_id")
    if event_id is None or isinstance(event_id, dict | list):
        return None
    return str(event_id)[:200]


def parse_timestamp(text: str) -> datetime | None:
    """ISO-8601 with a time zone (e.g. 2026-11-24T13:45:12.123Z) -> aware UTC datetime."""
    if len(text) < 10 or len(text) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None or "T" not in text.upper():
        return None  # a bare date or a local time is ambiguous: the contract says UTC
    return parsed.astimezone(UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_event(obj: dict[str, Any], reference_ms: int) -> ValidEvent | Reject:
    """Apply the contract's rules to a parsed object (raw_json left empty)."""
    get = obj.get
    event_id_text = _event_id_text(obj)
    event_type = get("event_type")
    if not isinstance(event_type, str):
        event_type = None if event_type is None else repr(event_type)

    required: tuple[str, ...] = REQUIRED_FIELDS
    if event_type != "page_view":
        required = (*REQUIRED_FIELDS, *PRODUCT_FIELDS)
    if event_type in QUANTITY_EVENT_TYPES:
        required = (*required, "quantity")
    missing = [name for name in required if get(name) is None or get(name) == ""]
    if missing:
        return Reject(
            RejectReason.MISSING_FIELD, f"missing or empty: {', '.join(missing)}", event_id_text
        )

    for name in _STRING_FIELDS:
        value = get(name)
        if value is not None and not isinstance(value, str):
            return Reject(
                RejectReason.WRONG_TYPE,
                f"{name} must be a string, got {type(value).__name__}",
                event_id_text,
            )
    price = get("price")
    if price is not None and (not _is_number(price) or not math.isfinite(price)):
        return Reject(
            RejectReason.WRONG_TYPE, f"price must be a number, got {price!r:.40}", event_id_text
        )
    quantity = get("quantity")
    if quantity is not None and (not isinstance(quantity, int) or isinstance(quantity, bool)):
        return Reject(
            RejectReason.WRONG_TYPE,
            f"quantity must be an integer, got {quantity!r:.40}",
            event_id_text,
        )

    if event_type not in _EVENT_TYPES:
        return Reject(
            RejectReason.UNKNOWN_EVENT_TYPE, f"unknown event_type {event_type!r:.60}", event_id_text
        )

    try:
        event_id = str(uuid.UUID(obj["event_id"]))
    except ValueError:
        return Reject(
            RejectReason.INVALID_EVENT_ID, f"event_id {event_id_text!r:.60} is not a UUID",
            event_id_text,
        )

    raw_ts = obj["event_timestamp"]
    timestamp = parse_timestamp(raw_ts)
    if timestamp is None:
        return Reject(
            RejectReason.INVALID_TIMESTAMP,
            f"event_timestamp {raw_ts!r:.60} is not ISO-8601 with a time zone",
            event_id_text,
        )
    skew_ms = timestamp.timestamp() * 1000 - reference_ms
    if skew_ms > _FUTURE_SKEW_MS:
        return Reject(
            RejectReason.FUTURE_TIMESTAMP,
            f"event_timestamp {raw_ts} is {skew_ms / 60000:.0f} min ahead of the record's "
            f"Kafka time (limit {MAX_FUTURE_SKEW_SECONDS // 60} min)",
            event_id_text,
        )

    if price is not None:
        if price < 0:
            return Reject(RejectReason.NEGATIVE_PRICE, f"price {price} is negative", event_id_text)
        if price > MAX_PRICE:
            return Reject(
                RejectReason.WRONG_TYPE, f"price {price} exceeds numeric(12,2)", event_id_text
            )
    if quantity is not None and not 1 <= quantity <= MAX_QUANTITY:
        return Reject(
            RejectReason.INVALID_QUANTITY,
            f"quantity {quantity} is outside 1..{MAX_QUANTITY}",
            event_id_text,
        )

    return ValidEvent(
        event_id, obj["user_id"], obj["session_id"], event_type, timestamp,
        get("product_id"), get("category"), price, quantity,
        obj["page_url"], obj["user_agent"], obj["ip_address"], "",
    )


_CANONICAL_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
_CANONICAL_TS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z"
_Text = Annotated[str, msgspec.Meta(min_length=1)]


class _Contract(msgspec.Struct, forbid_unknown_fields=True):
    """The common case of the contract, checked in C while decoding: known fields only,
    right types, canonical event_id and timestamp, non-empty strings, price and quantity in
    range. Anything else fails to decode and takes the reference path."""

    event_id: Annotated[str, msgspec.Meta(pattern=_CANONICAL_UUID)]
    user_id: _Text
    session_id: _Text
    event_type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    event_timestamp: Annotated[str, msgspec.Meta(pattern=_CANONICAL_TS)]
    page_url: _Text
    user_agent: _Text
    ip_address: _Text
    product_id: _Text | None = None
    category: _Text | None = None
    price: Annotated[float, msgspec.Meta(ge=0, le=MAX_PRICE)] | None = None
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] | None = None


_DECODER = msgspec.json.Decoder(_Contract)
_QUANTITY_TYPES = QUANTITY_EVENT_TYPES
_from_iso = datetime.fromisoformat


def _fast_validate(value: bytes, reference_ms: int) -> ValidEvent | None:
    """The common case, quickly: a ValidEvent, or None to let the reference path decide."""
    try:
        e = _DECODER.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    event_type = e.event_type
    price, quantity = e.price, e.quantity
    if event_type != "page_view" and (e.product_id is None or e.category is None
                                      or price is None):
        return None
    if quantity is None and event_type in _QUANTITY_TYPES:
        return None
    try:
        timestamp = _from_iso(e.event_timestamp)  # canonical form ends in Z: aware UTC
        text = value.decode("utf-8")
    except ValueError:  # e.g. month 13; UnicodeDecodeError is a ValueError too
        return None
    if timestamp.timestamp() * 1000 - reference_ms > _FUTURE_SKEW_MS:
        return None
    if "\\" in text:
        if "\\u" in text:
            return None  # escapes may hide NUL or surrogates: the reference path checks them
        canonical = False
    else:
        canonical = True
    return ValidEvent(
        e.event_id, e.user_id, e.session_id, event_type, timestamp, e.product_id, e.category,
        price, quantity, e.page_url, e.user_agent, e.ip_address, text, canonical,
        e.event_timestamp,
    )


def validate(value: bytes | None, reference_ms: int) -> ValidEvent | Reject:
    """Validate one record's value. `reference_ms`: 'now' for the future-timestamp rule.

    Callers pass min(ingest time, the record's Kafka timestamp), so replaying old records
    gives the same verdict as the first time they were read.
    """
    if value is None:
        return Reject(RejectReason.INVALID_JSON, "record has no value (null / tombstone)")
    if len(value) <= MAX_EVENT_BYTES:
        fast = _fast_validate(value, reference_ms)
        if fast is not None:
            return fast
    return validate_reference(value, reference_ms)


def validate_reference(value: bytes | None, reference_ms: int) -> ValidEvent | Reject:
    """The reference path: every rule in order, exact reasons (also used by the tests)."""
    if value is None:
        return Reject(RejectReason.INVALID_JSON, "record has no value (null / tombstone)")
    if len(value) > MAX_EVENT_BYTES:
        obj, _ = parse_json(value)
        return Reject(
            RejectReason.OVERSIZE,
            f"value is {len(value)} bytes, the limit is {MAX_EVENT_BYTES}",
            _event_id_text(obj) if obj is not None else None,
        )
    obj, text = parse_json(value)
    if obj is None:
        return text  # type: ignore[return-value]  # the Reject
    result = check_event(obj, reference_ms)
    if isinstance(result, Reject):
        return result
    return result._replace(raw_json=text)


def raw_text(value: bytes | None) -> str | None:
    """A record's value as storable text for `rejected_events.raw_value` (lossy only if needed)."""
    if value is None:
        return None
    return value.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
