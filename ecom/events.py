"""The event contract shared by the simulator (which writes it) and ingestion (which enforces it).

An event is one JSON object on topic `ecommerce-events`, keyed by `user_id`.
"""

from __future__ import annotations

from enum import StrEnum

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "add_to_cart",
    "remove_from_cart",
    "wishlist_add",
    "purchase",
)

#: Fields every event must carry (non-null).
REQUIRED_FIELDS: tuple[str, ...] = (
    "event_id",
    "user_id",
    "session_id",
    "event_type",
    "event_timestamp",
    "page_url",
    "user_agent",
    "ip_address",
)

#: Product fields, required for every event type except page_view (a home or search page
#: view has no product).
PRODUCT_FIELDS: tuple[str, ...] = ("product_id", "category", "price")
#: Event types that must carry a quantity >= 1.
QUANTITY_EVENT_TYPES: frozenset[str] = frozenset({"add_to_cart", "remove_from_cart", "purchase"})

#: Every field of the schema, in column order of `raw.raw_events`.
ALL_FIELDS: tuple[str, ...] = (
    "event_id",
    "user_id",
    "session_id",
    "event_type",
    "event_timestamp",
    "product_id",
    "category",
    "price",
    "quantity",
    "page_url",
    "user_agent",
    "ip_address",
)

#: Payloads larger than this are rejected as `oversize` (bytes of the Kafka value).
MAX_EVENT_BYTES = 16 * 1024
#: Events stamped further than this in the future are rejected as `future_timestamp`.
MAX_FUTURE_SKEW_SECONDS = 15 * 60


class RejectReason(StrEnum):
    """Reason codes written to `raw.rejected_events.reason_code`."""

    INVALID_JSON = "invalid_json"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    NEGATIVE_PRICE = "negative_price"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_TIMESTAMP = "invalid_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    INVALID_EVENT_ID = "invalid_event_id"
    OVERSIZE = "oversize"
    DUPLICATE_EVENT_ID = "duplicate_event_id"


class BadClass(StrEnum):
    """Classes of malformed input the simulator injects on purpose (`--bad-rate`)."""

    INVALID_JSON = "invalid_json"
    MISSING_FIELD = "missing_field"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    NEGATIVE_PRICE = "negative_price"
    ZERO_QUANTITY = "zero_quantity"
    UNPARSEABLE_TIMESTAMP = "unparseable_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    NON_UUID_EVENT_ID = "non_uuid_event_id"
    WRONG_TYPES = "wrong_types"
    DUPLICATE_EVENT_ID = "duplicate_event_id"
    OVERSIZE = "oversize"


#: The one reason code ingestion must give each injected bad class; reconciliation relies on it.
EXPECTED_REASON: dict[BadClass, RejectReason] = {
    BadClass.INVALID_JSON: RejectReason.INVALID_JSON,
    BadClass.MISSING_FIELD: RejectReason.MISSING_FIELD,
    BadClass.UNKNOWN_EVENT_TYPE: RejectReason.UNKNOWN_EVENT_TYPE,
    BadClass.NEGATIVE_PRICE: RejectReason.NEGATIVE_PRICE,
    BadClass.ZERO_QUANTITY: RejectReason.INVALID_QUANTITY,
    BadClass.UNPARSEABLE_TIMESTAMP: RejectReason.INVALID_TIMESTAMP,
    BadClass.FUTURE_TIMESTAMP: RejectReason.FUTURE_TIMESTAMP,
    BadClass.NON_UUID_EVENT_ID: RejectReason.INVALID_EVENT_ID,
    BadClass.WRONG_TYPES: RejectReason.WRONG_TYPE,
    BadClass.DUPLICATE_EVENT_ID: RejectReason.DUPLICATE_EVENT_ID,
    BadClass.OVERSIZE: RejectReason.OVERSIZE,
}

#: Timestamps are ISO-8601 UTC with millisecond precision, e.g. 2026-11-24T13:45:12.123Z
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
