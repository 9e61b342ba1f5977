"""Simulator building blocks: catalogue, funnel invariants, traffic shape, encoding."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from ecom.events import EVENT_TYPES, QUANTITY_EVENT_TYPES, TIMESTAMP_FORMAT
from simulator.catalog import CATEGORIES, build_catalog
from simulator.encode import encode_event, format_ts, new_uuid, time_uuid
from simulator.sessions import FunnelParams, Step, simulate_session
from simulator.traffic import HOURLY_WEIGHTS, WEEKDAY_FACTORS, hourly_targets

START_MS = 1_763_000_000_000


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(seed=11, n_products=300, n_users=400)


def _sessions(catalog, n: int = 3000, params: FunnelParams | None = None,
              seed: int = 5) -> list[list[Step]]:
    rng = random.Random(seed)
    params = params or FunnelParams()
    return [simulate_session(rng, catalog, START_MS + i * 1000, params, returning=i % 3 == 0)
            for i in range(n)]


def test_catalog_is_stable_for_a_seed_and_differs_across_seeds() -> None:
    a = build_catalog(seed=3, n_products=50, n_users=40)
    b = build_catalog(seed=3, n_products=50, n_users=40)
    c = build_catalog(seed=4, n_products=50, n_users=40)
    assert a == b
    assert [p.price_cents for p in a.products] != [p.price_cents for p in c.products]
    assert [u.user_agent for u in a.users] != [u.user_agent for u in c.users]
    assert a.products[7].product_id == "prod_00007" and a.users[9].user_id == "user_000009"


def test_catalog_prices_follow_their_category(catalog) -> None:
    by_name = {c.name: c for c in CATEGORIES}
    assert {p.category for p in catalog.products} == set(by_name)
    for product in catalog.products:
        cat = by_name[product.category]
        assert cat.min_cents <= product.price_cents <= cat.max_cents + 9
        fragment = json.loads("{" + product.json + "}")
        assert fragment == {"product_id": product.product_id, "category": product.category,
                            "price": product.price_cents / 100}
    median = {name: sorted(p.price_cents for p in catalog.by_category[name])
              for name in ("electronics", "books")}
    assert median["electronics"][len(median["electronics"]) // 2] > \
        3 * median["books"][len(median["books"]) // 2]


def test_users_mix_devices_and_returning_visitors(catalog) -> None:
    devices = Counter(u.device for u in catalog.users)
    assert set(devices) == {"desktop", "mobile", "tablet"}
    assert devices["tablet"] < devices["desktop"] and devices["tablet"] < devices["mobile"]
    assert all("Mobile" in u.user_agent for u in catalog.users if u.device == "mobile")
    assert 0.2 < len(catalog.returning_users) / len(catalog.users) < 0.4
    rng = random.Random(1)
    picks = [catalog.pick_user(rng) for _ in range(5000)]
    share = sum(u.returning for u in picks) / len(picks)
    assert abs(share - catalog.returning_share) < 0.03
    assert len({u.ip_address for u in catalog.users}) > 0.95 * len(catalog.users)


def test_purchases_are_exactly_what_is_in_the_cart(catalog) -> None:
    sessions = _sessions(catalog)
    orders = abandoned_carts = 0
    for steps in sessions:
        cart: Counter[str] = Counter()
        added: set[str] = set()
        purchased: dict[str, int] = {}
        for step in steps:
            if step.event_type == "add_to_cart":
                cart[step.product.product_id] += step.quantity
                added.add(step.product.product_id)
            elif step.event_type == "remove_from_cart":
                assert 1 <= step.quantity <= cart[step.product.product_id]
                cart[step.product.product_id] -= step.quantity
            elif step.event_type == "purchase":
                product_id = step.product.product_id
                assert product_id in added, "purchase without a prior add_to_cart"
                assert product_id not in purchased, "one purchase line per product"
                assert step.product.price_cents == \
                    catalog.product_by_id(product_id).price_cents
                purchased[product_id] = step.quantity
        in_cart = {pid: q for pid, q in cart.items() if q > 0}
        if purchased:
            orders += 1
            assert purchased == in_cart
            tail = [s.event_type for s in steps[-len(purchased):]]
            assert tail == ["purchase"] * len(purchased), "checkout ends the session"
        elif in_cart:
            abandoned_carts += 1
    assert orders > 30 and abandoned_carts > orders  # most carts are abandoned


def test_session_shape_and_timestamps(catalog) -> None:
    types: Counter[str] = Counter()
    for steps in _sessions(catalog):
        assert steps[0].event_type == "page_view"
        assert all(a.ts_ms < b.ts_ms for a, b in itertools.pairwise(steps))
        for step in steps:
            types[step.event_type] += 1
            if step.event_type != "page_view":
                assert step.product is not None
            if step.event_type in QUANTITY_EVENT_TYPES:
                assert step.quantity >= 1
            else:
                assert step.quantity == 0
            assert step.page_url.startswith("https://shop.example.com/")
    assert set(types) == set(EVENT_TYPES)
    assert types["page_view"] > types["add_to_cart"] > types["purchase"] > 0


def test_funnel_probabilities_steer_the_outcome(catalog) -> None:
    never = _sessions(catalog, 800, FunnelParams(conversion=0.0))
    assert not any(s.event_type == "purchase" for steps in never for s in steps)
    always = _sessions(catalog, 800, FunnelParams(conversion=1.0, remove_from_cart=0.0))
    for steps in always:
        if any(s.event_type == "add_to_cart" for s in steps):
            assert steps[-1].event_type == "purchase"
    bounce = _sessions(catalog, 300, FunnelParams(abandonment=1.0, add_to_cart=0.0, wishlist=0.0))
    assert all(len(steps) == 1 for steps in bounce)
    with pytest.raises(ValueError, match="conversion"):
        FunnelParams(conversion=1.5).validate()


def test_same_rng_state_gives_the_same_session(catalog) -> None:
    assert _sessions(catalog, 50, seed=9) == _sessions(catalog, 50, seed=9)
    assert _sessions(catalog, 50, seed=9) != _sessions(catalog, 50, seed=10)


def test_traffic_shape() -> None:
    for total in (0, 1, 23, 24, 1000, 99_999):
        targets = hourly_targets(total)
        assert len(targets) == 24 and sum(targets) == total
    targets = hourly_targets(100_000)
    assert targets[20] > 4 * targets[3]  # evening peak vs night
    assert targets.index(max(targets)) == HOURLY_WEIGHTS.index(max(HOURLY_WEIGHTS))
    assert abs(sum(WEEKDAY_FACTORS) / 7 - 1.0) < 1e-9


def test_uuids_and_timestamps_are_contract_text() -> None:
    rng = random.Random(1)
    ids = [new_uuid(rng) for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)
    assert [new_uuid(random.Random(1)) for _ in range(1)] == ids[:1]
    for ms in (0, 1_763_000_000_123, 1_763_078_399_999, 4_102_444_800_000):
        day, text = format_ts(ms)
        expected = datetime.fromtimestamp(ms / 1000, UTC)
        assert text == expected.strftime(TIMESTAMP_FORMAT)[:-4] + "Z"
        assert datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC) == expected
        assert day == expected.date().isoformat()


def test_time_uuids_are_version_7_and_sort_by_their_timestamp() -> None:
    rng = random.Random(1)
    stamps = sorted(rng.randrange(0, 4_102_444_800_000) for _ in range(2000))
    ids = [time_uuid(rng, ms) for ms in stamps]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == i
               for u, i in zip(parsed, ids, strict=True))
    assert [u.int >> 80 for u in parsed] == stamps  # the first 48 bits are the time
    assert ids == sorted(ids)  # text order is time order (then random within a ms)
    same_ms = [time_uuid(rng, 1_763_000_000_123) for _ in range(200)]
    assert len(set(same_ms)) == 200
    assert time_uuid(random.Random(7), 5) == time_uuid(random.Random(7), 5)


def test_encoded_event_is_the_contract(catalog) -> None:
    user, product = catalog.users[0], catalog.products[0]
    _, ts = format_ts(START_MS)
    event = json.loads(encode_event("e1", user, "s1", "purchase", ts, product, 2, "u"))
    assert list(event) == ["event_id", "user_id", "session_id", "event_type", "event_timestamp",
                           "product_id", "category", "price", "quantity", "page_url",
                           "user_agent", "ip_address"]
    assert event["price"] == product.price_cents / 100 and event["quantity"] == 2
    assert event["user_agent"] == user.user_agent and event["ip_address"] == user.ip_address
    home = json.loads(encode_event("e2", user, "s1", "page_view", ts, None, 0, "u"))
    assert "product_id" not in home and "quantity" not in home
