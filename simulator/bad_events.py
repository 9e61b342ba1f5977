"""Malformed input on purpose (`--bad-rate`): one named class per bad message.

Each class breaks exactly one rule of the contract, so ingestion must reject it with
`ecom.events.EXPECTED_REASON[cls]` and nothing else: a bad message is built from the valid
event just sent (same user, session, valid timestamp) with a fresh event_id, then broken in
one way. DUPLICATE_EVENT_ID is an exact re-send (same key, same bytes) of a recently sent
valid event. Deterministic: all choices come from the injector's own RNG.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from math import log

from ecom.events import MAX_EVENT_BYTES, QUANTITY_EVENT_TYPES, BadClass
from simulator.catalog import Catalog, Product, price_text
from simulator.encode import format_ts, new_uuid

UNKNOWN_EVENT_TYPES = ("checkout_started", "refund", "PageView", "add-to-cart", "product_click")


def _dumps(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))


def _with_product(event: dict, product: Product, event_type: str | None = None) -> dict:
    """The event carrying product fields (switched to `event_type` if it had none)."""
    if "product_id" in event:
        return event
    event = dict(event)
    event["event_type"] = event_type or "add_to_cart"
    event["product_id"] = product.product_id
    event["category"] = product.category
    event["price"] = float(price_text(product.price_cents))
    if event["event_type"] in QUANTITY_EVENT_TYPES:
        event["quantity"] = 1
    event["page_url"] = product.url
    return _reorder(event)


def _reorder(event: dict) -> dict:
    order = ("event_id", "user_id", "session_id", "event_type", "event_timestamp", "product_id",
             "category", "price", "quantity", "page_url", "user_agent", "ip_address")
    return {k: event[k] for k in order if k in event} | {k: v for k, v in event.items()
                                                         if k not in order}


def corrupt(cls: BadClass, rng: random.Random, event: dict, product: Product,
            event_id: str, future_ts: str) -> bytes:
    """A message of class `cls` built from the valid `event` (not mutated).

    `product` stands in when the class needs product fields and `event` has none;
    `event_id` is the fresh id of the bad message; `future_ts` the text used for
    FUTURE_TIMESTAMP. Not for DUPLICATE_EVENT_ID (see `Injector`).
    """
    event = dict(event, event_id=event_id)
    if cls is BadClass.INVALID_JSON:
        text = _dumps(event)
        variant = rng.randrange(4)
        if variant == 0:  # truncated in flight: a prefix of an object never closes
            return text[: 10 + int(rng.random() * (len(text) - 12))].encode()
        if variant == 1:  # a Python dict repr, single-quoted
            return repr(event).encode()
        if variant == 2:  # trailing comma
            return (text[:-1] + ",}").encode()
        return text.replace('"event_id":', "event_id:", 1).encode()  # unquoted key
    if cls is BadClass.MISSING_FIELD:
        candidates = ["user_id", "session_id", "page_url", "user_agent", "ip_address"]
        if event["event_type"] != "page_view":  # product fields are optional on page views
            candidates += ["product_id", "category"]
        del event[candidates[int(rng.random() * len(candidates))]]
    elif cls is BadClass.UNKNOWN_EVENT_TYPE:
        event = _with_product(event, product)
        event.setdefault("quantity", 1)
        event["event_type"] = UNKNOWN_EVENT_TYPES[int(rng.random() * len(UNKNOWN_EVENT_TYPES))]
        event = _reorder(event)
    elif cls is BadClass.NEGATIVE_PRICE:
        event = _with_product(event, product)
        event["price"] = -abs(event["price"]) or -1.0
    elif cls is BadClass.ZERO_QUANTITY:
        if event["event_type"] not in QUANTITY_EVENT_TYPES:
            event = _with_product(dict(event, event_type="add_to_cart"), product)
        event["quantity"] = 0
        event = _reorder(event)
    elif cls is BadClass.UNPARSEABLE_TIMESTAMP:
        ts = event["event_timestamp"]
        event["event_timestamp"] = (
            f"{ts[:5]}13{ts[7:]}",  # month 13
            f"{ts[:4]}-02-30{ts[10:]}",  # February 30th
            f"{ts[:10]}T25:61:00.000Z",  # hour 25
            "not-a-timestamp",
        )[rng.randrange(4)]
    elif cls is BadClass.FUTURE_TIMESTAMP:
        event["event_timestamp"] = future_ts
    elif cls is BadClass.NON_UUID_EVENT_ID:
        event["event_id"] = (
            f"evt-{rng.randrange(1, 10**9)}",
            event_id[:23],  # truncated
            "zzzzzzzz" + event_id[8:],  # not hexadecimal
        )[rng.randrange(3)]
    elif cls is BadClass.WRONG_TYPES:
        if event["event_type"] in QUANTITY_EVENT_TYPES and rng.random() < 0.5:
            event["quantity"] = ("two", "three", "one")[rng.randrange(3)]
        else:
            event = _with_product(event, product)
            event["price"] = ("abc", "free", "N/A")[rng.randrange(3)]
    elif cls is BadClass.OVERSIZE:
        base = len(_dumps(event))
        target = MAX_EVENT_BYTES + 1 + int(rng.random() * 3 * MAX_EVENT_BYTES)
        digits = max(target - base - len("?utm_source=mail&ref="), 1)
        blob = f"{rng.getrandbits(digits * 4):0{digits}x}"
        event["page_url"] = f"{event['page_url']}?utm_source=mail&ref={blob}"
    else:
        raise ValueError(f"corrupt() does not build {cls}")
    return _dumps(event).encode()


class Injector:
    """Decides where bad messages go (so `bad_rate` of all messages are bad) and builds them.

    After each valid message a bad one follows with probability q = bad_rate / (1 - bad_rate);
    the gaps between bad messages are drawn as geometric variates, so the per-message cost
    is a counter decrement.
    """

    RING_SIZE = 2048  # duplicates re-send one of the last RING_SIZE valid messages

    def __init__(self, rng: random.Random, bad_rate: float, classes: Sequence[BadClass],
                 catalog: Catalog, future_ms: Callable[[random.Random], int]) -> None:
        if not 0.0 <= bad_rate < 0.5:
            raise ValueError(f"bad rate must be in [0, 0.5), got {bad_rate}")
        if bad_rate and not classes:
            raise ValueError("a bad rate needs at least one bad class")
        self._rng = rng
        self._q = bad_rate / (1.0 - bad_rate)
        self._log_miss = log(1.0 - self._q) if self._q else 0.0
        self._classes = tuple(classes)
        self._catalog = catalog
        self._future_ms = future_ms

    @property
    def active(self) -> bool:
        return self._q > 0.0

    def gap(self) -> int:
        """Valid messages until the next bad one (>= 1)."""
        return 1 + int(log(1.0 - self._rng.random()) / self._log_miss)

    def bad_message(self, key: bytes, value: bytes,
                    recent: Sequence[tuple[bytes, bytes, tuple]]) -> tuple[bytes, bytes, BadClass]:
        """The bad message to send after the valid (key, value); `recent`: valid messages
        sent so far (the newest RING_SIZE), the pool for exact re-sends."""
        rng = self._rng
        cls = self._classes[int(rng.random() * len(self._classes))]
        if cls is BadClass.DUPLICATE_EVENT_ID:
            dup_key, dup_value, _ = recent[int(rng.random() * len(recent))]
            return dup_key, dup_value, cls
        product = self._catalog.pick_product(rng)
        future_ts = format_ts(self._future_ms(rng))[1]
        bad = corrupt(cls, rng, json.loads(value), product, new_uuid(rng), future_ts)
        return key, bad, cls
