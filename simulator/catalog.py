"""The shop the simulator plays: categories with price distributions, products and users.

Everything is built once per run from the catalogue seed (Faker for names, search terms
and IP addresses; `random.Random` for the rest), so ids, prices and user agents are stable
across runs (the traffic seed only drives sessions). Per-event code only indexes into
these tables; it never calls Faker.
"""

from __future__ import annotations

import json
import random
import re
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate
from urllib.parse import quote_plus

from faker import Faker

SHOP_URL = "https://shop.example.com"


@dataclass(frozen=True)
class Category:
    """A product category and the log-normal distribution of its prices."""

    name: str
    median_price: float
    sigma: float
    min_cents: int
    max_cents: int
    share: float  # share of the catalogue's products
    nouns: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("electronics", 120.0, 0.9, 499, 250_000, 0.18,
             ("headphones", "charger", "monitor", "speaker", "keyboard", "camera", "tablet")),
    Category("fashion", 35.0, 0.6, 399, 40_000, 0.22,
             ("t-shirt", "jeans", "sneakers", "jacket", "dress", "scarf", "hoodie")),
    Category("home", 45.0, 0.8, 299, 150_000, 0.16,
             ("lamp", "cushion", "rug", "kettle", "pan set", "curtain", "vase")),
    Category("beauty", 18.0, 0.5, 199, 15_000, 0.12,
             ("serum", "lipstick", "shampoo", "face cream", "perfume", "nail polish")),
    Category("sports", 40.0, 0.8, 299, 120_000, 0.10,
             ("yoga mat", "dumbbell", "running shoes", "tent", "bike helmet", "water bottle")),
    Category("books", 14.0, 0.4, 199, 8_000, 0.10,
             ("novel", "cookbook", "biography", "atlas", "comic", "guide")),
    Category("toys", 25.0, 0.6, 199, 30_000, 0.07,
             ("puzzle", "building set", "doll", "board game", "plush bear", "rc car")),
    Category("grocery", 6.0, 0.5, 49, 5_000, 0.05,
             ("coffee", "olive oil", "tea", "chocolate", "pasta", "granola")),
)

#: Device mix of the user population (desktop / mobile / tablet).
DEVICE_SHARES: dict[str, float] = {"desktop": 0.42, "mobile": 0.48, "tablet": 0.10}


def price_text(cents: int) -> str:
    """Cents as a JSON number with two decimals: 1990 -> '19.90', -5 -> '-0.05'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


@dataclass(frozen=True)
class Product:
    """A product; `json` is its pre-rendered `product_id,category,price` JSON fragment."""

    index: int
    product_id: str
    category: str
    name: str
    price_cents: int
    url: str
    json: str


@dataclass(frozen=True)
class User:
    """A shopper; `head_json`/`tail_json` are pre-rendered JSON fragments of the event."""

    index: int
    user_id: str
    device: str
    user_agent: str
    ip_address: str
    returning: bool
    key: bytes
    head_json: str  # "user_id":"..."
    tail_json: str  # "user_agent":"...","ip_address":"..."


@dataclass(frozen=True)
class Catalog:
    """Products (with popularity weights) and users (returning and occasional pools)."""

    products: tuple[Product, ...]
    product_cum_weights: tuple[float, ...]
    by_category: dict[str, tuple[Product, ...]]
    category_cum_weights: dict[str, tuple[float, ...]]
    users: tuple[User, ...]
    returning_users: tuple[User, ...]
    occasional_users: tuple[User, ...]
    returning_share: float
    search_urls: tuple[str, ...]

    def product_by_id(self, product_id: str) -> Product:
        return self.products[int(product_id.rsplit("_", 1)[1])]

    def pick_product(self, rng: random.Random, category: str | None = None) -> Product:
        """A product by popularity, optionally within one category."""
        if category is None:
            weights, pool = self.product_cum_weights, self.products
        else:
            weights, pool = self.category_cum_weights[category], self.by_category[category]
        return pool[bisect(weights, rng.random() * weights[-1])]

    def pick_user(self, rng: random.Random) -> User:
        """The visitor of a new session: a returning user with `returning_share` probability."""
        returning = rng.random() < self.returning_share
        pool = self.returning_users if returning else self.occasional_users
        return pool[int(rng.random() * len(pool))]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _user_agent(rng: random.Random, device: str) -> str:
    chrome = f"{rng.randint(118, 131)}.0.{rng.randint(5000, 6800)}.{rng.randint(10, 200)}"
    if device == "desktop":
        platform = rng.choice((
            "Windows NT 10.0; Win64; x64", "Windows NT 10.0; Win64; x64",
            f"Macintosh; Intel Mac OS X 10_15_{rng.randint(1, 7)}", "X11; Linux x86_64",
        ))
        browser = rng.random()
        if browser < 0.65:
            return (f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) "
                    f"Chrome/{chrome} Safari/537.36")
        if browser < 0.85:
            version = rng.randint(115, 133)
            return f"Mozilla/5.0 ({platform}; rv:{version}.0) Gecko/20100101 Firefox/{version}.0"
        return (f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) "
                f"Chrome/{chrome} Safari/537.36 Edg/{chrome}")
    ios = f"{rng.randint(15, 18)}_{rng.randint(0, 6)}"
    if device == "mobile":
        if rng.random() < 0.55:
            model = rng.choice(("SM-S918B", "Pixel 8", "Pixel 7a", "SM-A546B", "moto g84 5G"))
            return (f"Mozilla/5.0 (Linux; Android {rng.randint(11, 15)}; {model}) "
                    f"AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome} Mobile Safari/537.36")
        return (f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
                f"(KHTML, like Gecko) Version/{ios.split('_')[0]}.0 Mobile/15E148 Safari/604.1")
    if rng.random() < 0.6:
        return (f"Mozilla/5.0 (iPad; CPU OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
                f"(KHTML, like Gecko) Version/{ios.split('_')[0]}.0 Mobile/15E148 Safari/604.1")
    return (f"Mozilla/5.0 (Linux; Android {rng.randint(11, 15)}; SM-X710) AppleWebKit/537.36 "
            f"(KHTML, like Gecko) Chrome/{chrome} Safari/537.36")


def _products(fake: Faker, rng: random.Random, n_products: int) -> list[Product]:
    shares = [c.share for c in CATEGORIES]
    products = []
    for index in range(n_products):
        cat = CATEGORIES[index % len(CATEGORIES)] if index < len(CATEGORIES) else \
            rng.choices(CATEGORIES, weights=shares)[0]
        cents = round(rng.lognormvariate(0.0, cat.sigma) * cat.median_price * 100)
        cents = min(max(cents, cat.min_cents), cat.max_cents)
        cents = cents - cents % 10 + 9 if cents >= 1000 else cents  # shop prices end in 9
        name = f"{fake.color_name()} {fake.word()} {rng.choice(cat.nouns)}"
        product_id = f"prod_{index:05d}"
        url = f"{SHOP_URL}/p/{product_id}/{_slug(name)}"
        fragment = (f'"product_id":"{product_id}","category":"{cat.name}",'
                    f'"price":{price_text(cents)}')
        products.append(Product(index, product_id, cat.name, name, cents, url, fragment))
    return products


def _users(fake: Faker, rng: random.Random, n_users: int) -> list[User]:
    devices, shares = list(DEVICE_SHARES), list(DEVICE_SHARES.values())
    users = []
    for index in range(n_users):
        user_id = f"user_{index:06d}"
        device = rng.choices(devices, weights=shares)[0]
        agent = _user_agent(rng, device)
        ip = fake.ipv4_public()
        returning = rng.random() < 0.3
        users.append(User(
            index, user_id, device, agent, ip, returning, user_id.encode(),
            f'"user_id":"{user_id}"',
            f'"user_agent":{json.dumps(agent)},"ip_address":"{ip}"',
        ))
    return users


def build_catalog(seed: int, n_products: int = 2000, n_users: int = 10_000,
                  returning_share: float = 0.6) -> Catalog:
    """The catalogue and user base for a seed.

    About 30% of users are "returning": they make `returning_share` of all sessions, so
    they come back across days; the rest visit occasionally.
    """
    if n_products < len(CATEGORIES):
        raise ValueError(f"need at least {len(CATEGORIES)} products (one per category)")
    if n_users < 2:
        raise ValueError("need at least 2 users")
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(f"ecom-sim:{seed}:catalog")
    products = _products(fake, rng, n_products)
    # Zipf-like popularity: a few products get most of the views.
    ranks = list(range(n_products))
    rng.shuffle(ranks)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in ranks]
    by_category: dict[str, list[tuple[Product, float]]] = {c.name: [] for c in CATEGORIES}
    for product, weight in zip(products, weights, strict=True):
        by_category[product.category].append((product, weight))
    users = _users(fake, rng, n_users)
    returning = tuple(u for u in users if u.returning) or users[:1]
    occasional = tuple(u for u in users if not u.returning) or users[-1:]
    terms = sorted({fake.word() for _ in range(200)} | {n for c in CATEGORIES for n in c.nouns})
    return Catalog(
        products=tuple(products),
        product_cum_weights=tuple(accumulate(weights)),
        by_category={k: tuple(p for p, _ in v) for k, v in by_category.items()},
        category_cum_weights={k: tuple(accumulate(w for _, w in v))
                              for k, v in by_category.items()},
        users=tuple(users),
        returning_users=tuple(returning),
        occasional_users=tuple(occasional),
        returning_share=returning_share,
        search_urls=tuple(f"{SHOP_URL}/search?q={quote_plus(t)}" for t in terms),
    )
