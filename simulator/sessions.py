"""A shopping session as a funnel state machine (pure: a seeded RNG in, steps out).

A visitor lands on a page, browses (page views, mostly product pages), may add the viewed
product to the cart or the wishlist, may remove something from the cart, and leaves after
each page with probability `abandonment`. A visitor who leaves with a non-empty cart checks
out with probability `conversion` (one order: one `purchase` line per cart item, at the
catalogue price and the quantity really in the cart), otherwise the cart is abandoned.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from math import exp, log
from typing import NamedTuple

from simulator.catalog import CATEGORIES, SHOP_URL, Catalog, Product

HOME_URL = f"{SHOP_URL}/"
CART_URL = f"{SHOP_URL}/cart"
CHECKOUT_URL = f"{SHOP_URL}/checkout"
CONFIRMATION_URL = f"{SHOP_URL}/checkout/confirmation"
CATEGORY_URLS = {c.name: f"{SHOP_URL}/c/{c.name}" for c in CATEGORIES}

_QUANTITY_CUM = (76, 91, 97, 99, 100)  # P(quantity = 1..5) in percent, cumulative
_DWELL_MU = log(25_000)  # median time on a page: 25 s


@dataclass(frozen=True)
class FunnelParams:
    """Probabilities of the funnel; the defaults give ~3% session conversion."""

    abandonment: float = 0.22  # after each page: the visitor leaves
    conversion: float = 0.30  # a visitor leaving with a non-empty cart checks out
    add_to_cart: float = 0.06  # on a product page: add it to the cart
    wishlist: float = 0.04  # on a product page (not added to cart): add it to the wishlist
    remove_from_cart: float = 0.06  # after each page, cart not empty: remove an item
    product_page: float = 0.7  # a navigation opens a product page (else a listing page)
    same_category: float = 0.6  # a product page stays in the current category
    returning_boost: float = 1.3  # conversion multiplier for returning users
    max_pages: int = 40

    def validate(self) -> None:
        for name in ("abandonment", "conversion", "add_to_cart", "wishlist",
                     "remove_from_cart", "product_page", "same_category"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.abandonment == 0.0:
            raise ValueError("abandonment must be > 0, otherwise sessions never end")


class Step(NamedTuple):
    """One event of a session before it gets ids and is encoded."""

    ts_ms: int
    event_type: str
    product: Product | None
    quantity: int  # 0 when the event type carries no quantity
    page_url: str


def _gap(rng: random.Random, low_ms: int, high_ms: int) -> int:
    return low_ms + int(rng.random() * (high_ms - low_ms))


def _dwell(rng: random.Random) -> int:
    """Time on a page: log-normal, median 25 s, clamped to [0.8 s, 10 min]."""
    return min(max(int(exp(rng.gauss(_DWELL_MU, 0.8))), 800), 600_000)


def _quantity(rng: random.Random) -> int:
    return bisect(_QUANTITY_CUM, rng.random() * 100) + 1


def simulate_session(rng: random.Random, catalog: Catalog, start_ms: int,
                     params: FunnelParams, returning: bool = False) -> list[Step]:
    """The events of one session, timestamps strictly increasing from `start_ms`."""
    steps: list[Step] = []
    t = start_ms
    cart: dict[int, list] = {}  # product index -> [product, quantity], in insertion order

    landing = rng.random()
    product: Product | None = None
    if landing < 0.3:
        url = HOME_URL
    elif landing < 0.5:
        url = catalog.search_urls[int(rng.random() * len(catalog.search_urls))]
    elif landing < 0.65:
        url = CATEGORY_URLS[CATEGORIES[int(rng.random() * len(CATEGORIES))].name]
    else:
        product = catalog.pick_product(rng)
        url = product.url
    category = product.category if product else None

    pages = 0
    while True:
        steps.append(Step(t, "page_view", product, 0, url))
        pages += 1
        if product is not None:
            if rng.random() < params.add_to_cart:
                t += _gap(rng, 2_000, 40_000)
                quantity = _quantity(rng)
                entry = cart.get(product.index)
                if entry is None:
                    cart[product.index] = [product, quantity]
                else:
                    entry[1] += quantity
                steps.append(Step(t, "add_to_cart", product, quantity, url))
            elif rng.random() < params.wishlist:
                t += _gap(rng, 2_000, 20_000)
                steps.append(Step(t, "wishlist_add", product, 0, url))
        if cart and rng.random() < params.remove_from_cart:
            t += _gap(rng, 3_000, 30_000)
            entries = list(cart.values())
            entry = entries[int(rng.random() * len(entries))]
            removed = 1 if entry[1] > 1 and rng.random() < 0.4 else entry[1]
            entry[1] -= removed
            if entry[1] == 0:
                del cart[entry[0].index]
            steps.append(Step(t, "remove_from_cart", entry[0], removed, CART_URL))
        if pages >= params.max_pages or rng.random() < params.abandonment:
            break
        t += _dwell(rng)
        if rng.random() < params.product_page:
            same = category is not None and rng.random() < params.same_category
            product = catalog.pick_product(rng, category if same else None)
            url = product.url
            category = product.category
        else:
            product = None
            if rng.random() < 0.5 and category is not None:
                url = CATEGORY_URLS[category]
            else:
                url = catalog.search_urls[int(rng.random() * len(catalog.search_urls))]

    conversion = params.conversion * (params.returning_boost if returning else 1.0)
    if cart and rng.random() < conversion:
        t += _gap(rng, 3_000, 30_000)
        steps.append(Step(t, "page_view", None, 0, CART_URL))
        t += _gap(rng, 5_000, 40_000)
        steps.append(Step(t, "page_view", None, 0, CHECKOUT_URL))
        t += _gap(rng, 20_000, 180_000)
        for item, quantity in cart.values():
            steps.append(Step(t, "purchase", item, quantity, CONFIRMATION_URL))
            t += 1 + int(rng.random() * 40)
    return steps
