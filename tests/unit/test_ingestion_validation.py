"""The event contract as ingestion enforces it: every reject reason, the order of checks, and
the fast path agreeing with the reference path."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from ecom.events import (
    EXPECTED_REASON,
    MAX_EVENT_BYTES,
    QUANTITY_EVENT_TYPES,
    REQUIRED_FIELDS,
    BadClass,
    RejectReason,
)
from ingestion.validation import (
    MAX_PRICE,
    MAX_QUANTITY,
    Reject,
    ValidEvent,
    parse_timestamp,
    raw_text,
    validate,
    validate_reference,
)

NOW = datetime(2026, 11, 24, 13, 45, 12, 123000, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
EVENT_ID = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"


def event(**changes: object) -> dict:
    base = {
        "event_id": EVENT_ID,
        "user_id": "u-000123",
        "session_id": "s-000123-1",
        "event_type": "purchase",
        "event_timestamp": "2026-11-24T13:40:00.250Z",
        "product_id": "P00042",
        "category": "electronics",
        "price": 199.99,
        "quantity": 2,
        "page_url": "https://shop.example.com/p/P00042",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "ip_address": "10.1.2.3",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


def reason(value: bytes, now_ms: int = NOW_MS) -> RejectReason | None:
    result = validate(value, now_ms)
    return result.reason if isinstance(result, Reject) else None


def test_a_complete_purchase_is_valid_and_cleaned() -> None:
    result = validate(encode(event(event_id=EVENT_ID.upper())), NOW_MS)
    assert isinstance(result, ValidEvent)
    assert result.event_id == EVENT_ID  # canonical lower case
    assert result.event_timestamp == datetime(2026, 11, 24, 13, 40, 0, 250000, tzinfo=UTC)
    assert (result.price, result.quantity, result.category) == (199.99, 2, "electronics")
    assert json.loads(result.raw_json)["event_id"] == EVENT_ID.upper()  # raw kept as sent


def test_page_view_needs_no_product_fields() -> None:
    value = encode(event(event_type="page_view", product_id=_DROP, category=_DROP, price=_DROP,
                         quantity=_DROP))
    result = validate(value, NOW_MS)
    assert isinstance(result, ValidEvent)
    assert (result.product_id, result.category, result.price, result.quantity) == (None,) * 4


def test_wishlist_needs_product_but_no_quantity() -> None:
    assert isinstance(validate(encode(event(event_type="wishlist_add", quantity=_DROP)), NOW_MS),
                      ValidEvent)
    assert reason(encode(event(event_type="wishlist_add", category=_DROP))) is \
        RejectReason.MISSING_FIELD


def test_unknown_extra_fields_are_allowed() -> None:
    assert isinstance(validate(encode(event(campaign={"id": 7}, tags=["a"])), NOW_MS), ValidEvent)


def test_price_zero_and_integer_prices_are_valid() -> None:
    assert isinstance(validate(encode(event(price=0)), NOW_MS), ValidEvent)
    assert validate(encode(event(price=20)), NOW_MS).price == 20  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [
    b"{not json", b'{"a": 1,}', b"{'event_id': 1}", b"", b"null", b"[1, 2]", b'"text"',
    b"\xff\xfe{}", b'{"a": NaN}', b'{"price": Infinity}',
])
def test_invalid_json(value: bytes) -> None:
    assert reason(value) is RejectReason.INVALID_JSON


def test_a_tombstone_is_invalid_json() -> None:
    assert reason(None) is RejectReason.INVALID_JSON  # type: ignore[arg-type]


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800"])
def test_json_postgres_cannot_store_is_invalid_json(escape: str) -> None:
    value = encode(event()).replace(b'"u-000123"', f'"u-{escape}"'.encode())
    result = validate(value, NOW_MS)
    assert isinstance(result, Reject) and result.reason is RejectReason.INVALID_JSON
    assert result.event_id == EVENT_ID


def test_other_unicode_escapes_are_fine() -> None:
    value = encode(event(user_agent="caf\u00e9 \U0001f600"))
    assert b"\\u" in value
    assert isinstance(validate(value, NOW_MS), ValidEvent)


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
@pytest.mark.parametrize("how", ["absent", "null", "empty"])
def test_missing_required_field(field: str, how: str) -> None:
    value = {"absent": _DROP, "null": None, "empty": ""}[how]
    result = validate(encode(event(**{field: value})), NOW_MS)
    assert isinstance(result, Reject)
    assert result.reason is RejectReason.MISSING_FIELD, result
    assert field in result.message


@pytest.mark.parametrize("field", ["product_id", "category", "price", "quantity"])
def test_missing_product_fields_on_a_purchase(field: str) -> None:
    assert reason(encode(event(**{field: _DROP}))) is RejectReason.MISSING_FIELD


@pytest.mark.parametrize("event_type", sorted(QUANTITY_EVENT_TYPES))
def test_quantity_required_for_cart_events(event_type: str) -> None:
    assert reason(encode(event(event_type=event_type, quantity=None))) is \
        RejectReason.MISSING_FIELD


@pytest.mark.parametrize("changes", [
    {"user_id": 123}, {"session_id": ["s"]}, {"event_id": 42}, {"page_url": {"u": 1}},
    {"event_timestamp": 1764000000}, {"price": "19.99"}, {"price": True}, {"quantity": "two"},
    {"quantity": 2.0}, {"quantity": False}, {"category": 5}, {"product_id": 7},
    {"event_type": 3}, {"price": MAX_PRICE * 10},
])
def test_wrong_type(changes: dict) -> None:
    assert reason(encode(event(**changes))) is RejectReason.WRONG_TYPE


@pytest.mark.parametrize("event_type", ["refund", "PageView", "add-to-cart", "PURCHASE", " "])
def test_unknown_event_type(event_type: str) -> None:
    assert reason(encode(event(event_type=event_type))) is RejectReason.UNKNOWN_EVENT_TYPE


@pytest.mark.parametrize("price", [-0.01, -100])
def test_negative_price(price: float) -> None:
    assert reason(encode(event(price=price))) is RejectReason.NEGATIVE_PRICE


@pytest.mark.parametrize("quantity", [0, -1, MAX_QUANTITY + 1])
def test_invalid_quantity(quantity: int) -> None:
    assert reason(encode(event(quantity=quantity))) is RejectReason.INVALID_QUANTITY


def test_quantity_on_other_event_types_is_checked_when_present() -> None:
    assert reason(encode(event(event_type="wishlist_add", quantity=0))) is \
        RejectReason.INVALID_QUANTITY


@pytest.mark.parametrize("ts", [
    "2026-13-24T13:40:00.000Z", "2026-02-30T13:40:00.000Z", "2026-11-24T25:61:00.000Z",
    "not-a-timestamp", "2026-11-24", "2026-11-24T13:40:00", "24/11/2026 13:40", "",
])
def test_invalid_timestamp(ts: str) -> None:
    expected = RejectReason.MISSING_FIELD if ts == "" else RejectReason.INVALID_TIMESTAMP
    assert reason(encode(event(event_timestamp=ts))) is expected


def test_timestamps_with_offsets_are_normalised_to_utc() -> None:
    result = validate(encode(event(event_timestamp="2026-11-24T15:40:00+02:00")), NOW_MS)
    assert isinstance(result, ValidEvent)
    assert result.event_timestamp == datetime(2026, 11, 24, 13, 40, tzinfo=UTC)
    assert parse_timestamp("2026-11-24T13:40:00.123456Z") == \
        datetime(2026, 11, 24, 13, 40, 0, 123456, tzinfo=UTC)


def test_future_timestamp_beyond_fifteen_minutes() -> None:
    def at(delta: timedelta) -> str:
        return (NOW + delta).isoformat().replace("+00:00", "Z")

    assert reason(encode(event(event_timestamp=at(timedelta(minutes=14))))) is None
    assert reason(encode(event(event_timestamp=at(timedelta(minutes=16))))) is \
        RejectReason.FUTURE_TIMESTAMP
    assert reason(encode(event(event_timestamp=at(timedelta(days=400))))) is \
        RejectReason.FUTURE_TIMESTAMP


def test_old_timestamps_are_valid() -> None:
    assert reason(encode(event(event_timestamp="2019-01-01T00:00:00.000Z"))) is None


@pytest.mark.parametrize("event_id", [
    "evt-12345", "6f1c2d3e-4b5a-4c7d-8e9f", "zzzzzzzz-4b5a-4c7d-8e9f-0a1b2c3d4e5f", "x",
])
def test_invalid_event_id(event_id: str) -> None:
    result = validate(encode(event(event_id=event_id)), NOW_MS)
    assert isinstance(result, Reject) and result.reason is RejectReason.INVALID_EVENT_ID
    assert result.event_id == event_id  # kept for tracing


def test_oversize_is_checked_first_and_keeps_the_event_id() -> None:
    big = encode(event(page_url="https://x/" + "a" * MAX_EVENT_BYTES))
    result = validate(big, NOW_MS)
    assert isinstance(result, Reject) and result.reason is RejectReason.OVERSIZE
    assert result.event_id == EVENT_ID
    assert reason(b"x" * (MAX_EVENT_BYTES + 1)) is RejectReason.OVERSIZE
    assert reason(b" " * (MAX_EVENT_BYTES - 20) + encode({"a": 1})) is not RejectReason.OVERSIZE


def test_order_of_checks_is_fixed() -> None:
    # missing beats wrong type beats unknown type beats bad id beats bad time beats price
    value = encode(event(user_id=_DROP, session_id=5, event_type="x", event_id="y",
                         event_timestamp="z", price=-1))
    assert reason(value) is RejectReason.MISSING_FIELD
    value = encode(event(session_id=5, event_type="x", event_id="y", event_timestamp="z"))
    assert reason(value) is RejectReason.WRONG_TYPE
    value = encode(event(event_type="x", event_id="y", event_timestamp="z", price=-1))
    assert reason(value) is RejectReason.UNKNOWN_EVENT_TYPE
    value = encode(event(event_id="y", event_timestamp="z", price=-1, quantity=0))
    assert reason(value) is RejectReason.INVALID_EVENT_ID
    value = encode(event(event_timestamp="z", price=-1, quantity=0))
    assert reason(value) is RejectReason.INVALID_TIMESTAMP
    value = encode(event(price=-1, quantity=0))
    assert reason(value) is RejectReason.NEGATIVE_PRICE


def test_raw_text_is_storable() -> None:
    assert raw_text(b"a\x00b\xffc") == "a\ufffdb\ufffdc"
    assert raw_text(None) is None


def _simulated(cls: BadClass, seed: int) -> bytes:
    """A bad message of `cls` built by the simulator's own corrupt()."""
    from simulator.bad_events import corrupt
    from simulator.encode import format_ts, new_uuid

    rng = random.Random(seed)
    catalog = _catalog()
    product = catalog.pick_product(rng)
    base = event(event_id=new_uuid(rng), product_id=product.product_id,
                 category=product.category, event_type=rng.choice(
                     ["page_view", "add_to_cart", "purchase", "wishlist_add"]))
    if base["event_type"] == "page_view":
        for name in ("product_id", "category", "price", "quantity"):
            base.pop(name)
    elif base["event_type"] == "wishlist_add":
        base.pop("quantity")
    future = format_ts(NOW_MS + 400 * 86_400_000)[1]
    return corrupt(cls, rng, base, product, new_uuid(rng), future)


_CATALOG: list = []


def _catalog() -> object:
    if not _CATALOG:
        from simulator.catalog import build_catalog

        _CATALOG.append(build_catalog(1, n_products=50, n_users=50))
    return _CATALOG[0]


@pytest.mark.parametrize("cls", [c for c in BadClass if c is not BadClass.DUPLICATE_EVENT_ID])
def test_every_simulated_bad_class_gets_its_expected_reason(cls: BadClass) -> None:
    for seed in range(40):
        value = _simulated(cls, seed)
        result = validate(value, NOW_MS)
        assert isinstance(result, Reject), (cls, value[:200])
        assert result.reason is EXPECTED_REASON[cls], (cls, result, value[:200])


def _mutations(rng: random.Random) -> bytes:
    """A random, mostly valid, sometimes subtly broken event."""
    obj = event(event_type=rng.choice(["page_view", "purchase", "add_to_cart", "wishlist_add",
                                       "remove_from_cart", "unknown"]))
    choice = rng.randrange(14)
    if choice == 0:
        obj["price"] = rng.choice([-1, 0, 1e12, "1", None, 5])
    elif choice == 1:
        obj["quantity"] = rng.choice([0, 1, 2.0, None, "2", 2**40])
    elif choice == 2:
        obj.pop(rng.choice(list(obj)))
    elif choice == 3:
        obj["event_id"] = rng.choice([EVENT_ID.upper(), "{" + EVENT_ID + "}", "abc", ""])
    elif choice == 4:
        obj["event_timestamp"] = rng.choice(["2026-11-24T13:40:00+01:00", "2026-11-24 13:40:00Z",
                                             "2030-01-01T00:00:00Z", "2026-11-24T13:40:00"])
    elif choice == 5:
        obj["category"] = rng.choice(["", None, 3])
    elif choice == 6:
        obj["user_id"] = rng.choice(["", " ", "x\u0000", 5])
    elif choice == 8:  # canonical-looking but impossible, or just outside the pattern
        obj["event_timestamp"] = rng.choice(["2026-13-24T13:40:00.000Z",
                                             "2026-02-30T13:40:00.000Z",
                                             "2026-11-24T13:40:00.000Z\n",
                                             "2026-11-24T13:40:00.12Z"])
    elif choice == 9:  # the edges of the columns' ranges
        obj["price"] = rng.choice([0, 0.0, 9_999_999_999.99, 9_999_999_999.999, 1e308])
        obj["quantity"] = rng.choice([1, 2_147_483_647, 2_147_483_648, True])
    elif choice == 10:
        obj["event_id"] = EVENT_ID + rng.choice(["\n", " ", "0"])
    text = json.dumps(obj)
    if choice == 7:
        text = text.replace("purchase", "purch\\u0061se")
    return text.encode()


def test_fast_path_agrees_with_the_reference_path() -> None:
    rng = random.Random(4)
    for _ in range(3000):
        value = _mutations(rng)
        fast, ref = validate(value, NOW_MS), validate_reference(value, NOW_MS)
        assert type(fast) is type(ref), (value, fast, ref)
        if isinstance(ref, Reject):
            assert fast == ref
        else:
            assert fast[:13] == ref[:13] or (  # type: ignore[index]
                fast._replace(price=None)[:13] == ref._replace(price=None)[:13]  # type: ignore
                and fast.price == ref.price)  # type: ignore[union-attr]


def test_clean_events_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingestion import validation

    calls: list[tuple] = []
    original = validation.validate_reference
    monkeypatch.setattr(validation, "validate_reference",
                        lambda *a: calls.append(a) or original(*a))
    for event_type in ("page_view", "purchase", "wishlist_add"):
        obj = event(event_type=event_type)
        if event_type == "page_view":
            obj = {k: v for k, v in obj.items() if k not in {"product_id", "category", "price",
                                                               "quantity"}}
        if event_type == "wishlist_add":
            obj.pop("quantity")
        assert isinstance(validation.validate(encode(obj), int(time.time() * 1000)), ValidEvent)
    assert calls == []
