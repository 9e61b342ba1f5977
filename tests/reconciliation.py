"""Reconciliation of the warehouse against simulator manifests, for the end-to-end and fault
tests: what was acknowledged by Kafka (the manifests) against raw, dead letters and marts.

`Expected` folds one or more manifests (e.g. a run and the run re-sent after a fault) into
the figures every check compares with; `id_figures` counts events checked / lost /
duplicated; `mart_figures` reads the same figures back from the dbt marts; `marts_digest`
is a content hash of a day's marts without the columns that only record when dbt wrote a
row. `show` prints a line to the terminal even when pytest captures output, so the figures
appear in CI logs of passing runs too.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ecom.config import Settings
from ecom.events import EXPECTED_REASON
from ecom_app.seed import WRITE_TIME_COLUMNS, query
from simulator.manifest import Manifest

#: reason code -> the bad class that must produce it (EXPECTED_REASON is one-to-one)
CLASS_OF_REASON = {reason.value: cls for cls, reason in EXPECTED_REASON.items()}
#: marts compared by content for one day, with the column holding the day
DAY_MARTS = {
    "analytics.daily_aggregations": "date",
    "analytics.user_sessions": "session_date",
    "analytics.product_analytics": "event_date",
}


@dataclass
class Expected:
    """What the warehouse must hold for a set of simulator runs (valid events counted once)."""

    event_ids: set[str] = field(default_factory=set)
    messages: int = 0
    by_day_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_day_category_type: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    revenue_by_day: Counter[str] = field(default_factory=Counter)
    revenue_by_day_category: Counter[tuple[str, str]] = field(default_factory=Counter)
    units_by_day: Counter[str] = field(default_factory=Counter)
    units_by_day_category: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: the simulator builds its catalogue from the run's seed: runs with different seeds
    #: sell different products under the same ids, so a product's category is per run
    catalogues: set[int] = field(default_factory=set)
    orders_by_day: Counter[str] = field(default_factory=Counter)
    bad_by_class: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, manifests: Iterable[Manifest]) -> Expected:
        out = cls()
        for m in manifests:
            assert m.status == "complete", f"simulation {m.run_id} ended {m.status}"
            ids = m.event_ids()
            assert not out.event_ids & set(ids), "runs share event ids: use distinct seeds"
            out.event_ids.update(ids)
            out.messages += m.messages_acknowledged
            for day, types in m.events_by_day_type.items():
                out.by_day_type.update({(day, t): n for t, n in types.items()})
            for day, cats in m.events_by_day_category_type.items():
                for cat, types in cats.items():
                    out.by_day_category_type.update({(day, cat, t): n for t, n in types.items()})
            for day, revenue in m.revenue_by_day.items():
                out.revenue_by_day[day] += Decimal(revenue)
            for day, cats in m.revenue_by_day_category.items():
                for cat, revenue in cats.items():
                    out.revenue_by_day_category[(day, cat)] += Decimal(revenue)
            for day, cats in m.units_by_day_category.items():
                out.units_by_day_category.update({(day, c): n for c, n in cats.items()})
                out.units_by_day[day] += sum(cats.values())
            out.catalogues.add(m.parameters["seed"])
            out.orders_by_day.update(m.orders_by_day)
            out.bad_by_class.update(m.bad_events_by_class)
        return out

    @property
    def days(self) -> list[str]:
        return sorted({day for day, _ in self.by_day_type})

    @property
    def bad(self) -> int:
        return sum(self.bad_by_class.values())


def nonzero(counter: Counter[Any]) -> dict[Any, Any]:
    return {k: v for k, v in counter.items() if v}


# ---- raw layer ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    checked: int  # valid events the manifests say Kafka acknowledged
    landed: int  # rows in raw.raw_events
    lost: int  # acknowledged, not in raw
    duplicated: int  # raw rows beyond one per acknowledged event
    rejected: int  # rows in raw.rejected_events
    rejected_expected: int

    def line(self, label: str) -> str:
        return (f"{label}: events checked {self.checked:,}, lost {self.lost}, duplicated "
                f"{self.duplicated}; rejected {self.rejected:,} of {self.rejected_expected:,} "
                "injected bad events")

    @property
    def exact(self) -> bool:
        return (self.lost == self.duplicated == 0 and self.landed == self.checked
                and self.rejected == self.rejected_expected)


def id_figures(settings: Settings, expected: Expected, topic: str | None = None) -> Figures:
    """Compare raw.raw_events (of `topic`, default the events topic) with the manifests."""
    topic = topic or settings.topic_events
    ids = [r[0] for r in query(settings, "select event_id::text from raw.raw_events "
                               "where kafka_topic = %s", (topic,))]
    landed = set(ids)
    rejected = query(settings, "select count(*) from raw.rejected_events where kafka_topic = %s",
                     (topic,))[0][0]
    return Figures(
        checked=len(expected.event_ids), landed=len(ids),
        lost=len(expected.event_ids - landed),
        duplicated=len(ids) - len(landed) + len(landed - expected.event_ids),
        rejected=rejected, rejected_expected=expected.bad,
    )


def rejected_by_class(settings: Settings, topic: str | None = None) -> dict[str, int]:
    """Dead letters counted by the bad class their reason code stands for."""
    rows = query(settings, "select reason_code, count(*) from raw.rejected_events "
                 "where kafka_topic = %s group by 1", (topic or settings.topic_events,))
    unknown = [reason for reason, _ in rows if reason not in CLASS_OF_REASON]
    assert not unknown, f"reason codes no bad class maps to: {unknown}"
    return {CLASS_OF_REASON[reason].value: n for reason, n in rows}


def offsets_settled_once(settings: Settings, topic: str | None = None) -> tuple[int, int]:
    """(rows, distinct Kafka coordinates (epoch, partition, offset)) over raw_events +
    rejected_events of the topic."""
    topic = topic or settings.topic_events
    (rows, distinct), = query(settings, """
        select count(*), count(distinct (kafka_epoch, kafka_partition, kafka_offset)) from (
            select kafka_epoch, kafka_partition, kafka_offset from raw.raw_events
            where kafka_topic = %s
            union all
            select kafka_epoch, kafka_partition, kafka_offset from raw.rejected_events
            where kafka_topic = %s
        ) as coordinates""", (topic, topic))
    return rows, distinct


def assert_raw_exact(settings: Settings, expected: Expected, topic: str | None = None
                     ) -> Figures:
    """raw_events = the valid events (exact ids), dead letters = the bad events class by
    class, each Kafka offset settled in exactly one of the two tables."""
    figures = id_figures(settings, expected, topic)
    assert (figures.lost, figures.duplicated) == (0, 0), figures
    ids = {r[0] for r in query(settings, "select event_id::text from raw.raw_events "
                               "where kafka_topic = %s", (topic or settings.topic_events,))}
    assert ids == expected.event_ids
    assert rejected_by_class(settings, topic) == nonzero(expected.bad_by_class)
    assert offsets_settled_once(settings, topic) == (expected.messages, expected.messages)
    return figures


# ---- marts --------------------------------------------------------------------------------

def _days(days: Iterable[str]) -> list[date]:
    return [date.fromisoformat(d) for d in days]


def mart_figures(settings: Settings, days: Iterable[str]) -> Expected:
    """The same figures as `Expected`, read back from the marts for `days` (no ids)."""
    day_list = _days(days)
    got = Expected()
    for day, category, event_type, events, revenue in query(settings, """
            select date::text, category, event_type, total_events, total_revenue
            from analytics.daily_aggregations where date = any(%s)""", (day_list,)):
        got.by_day_type[(day, event_type)] += events
        got.by_day_category_type[(day, category, event_type)] += events
        if event_type == "purchase":
            got.revenue_by_day[day] += revenue
            got.revenue_by_day_category[(day, category)] += revenue
    for day, category, units in query(settings, """
            select event_date::text, category, sum(units_sold)::bigint
            from analytics.product_analytics where event_date = any(%s)
            group by 1, 2""", (day_list,)):
        got.units_by_day_category[(day, category)] += units
        got.units_by_day[day] += units
    for day, orders in query(settings, """
            select event_date::text, count(distinct session_id)
            from analytics.processed_events
            where event_date = any(%s) and event_type = 'purchase' group by 1""", (day_list,)):
        got.orders_by_day[day] += orders
    return got


def processed_by_day_type(settings: Settings, days: Iterable[str]) -> dict[tuple[str, str], int]:
    return {(d, t): n for d, t, n in query(settings, """
        select event_date::text, event_type, count(*) from analytics.processed_events
        where event_date = any(%s) group by 1, 2""", (_days(days),))}


def assert_marts_exact(settings: Settings, expected: Expected, days: Iterable[str] | None = None
                       ) -> int:
    """Every count by event type and day (and category), every revenue figure by day and
    category, units (by category too for one catalogue) and orders by day: marts ==
    manifests. Returns the number of figures compared."""
    days = list(days or expected.days)

    def only(counter: Counter[Any]) -> dict[Any, Any]:
        return {k: v for k, v in nonzero(counter).items()
                if (k if isinstance(k, str) else k[0]) in days}

    got = mart_figures(settings, days)
    pairs = [
        ("events by day and event type", got.by_day_type, expected.by_day_type),
        ("events by day, category and event type", got.by_day_category_type,
         expected.by_day_category_type),
        ("revenue by day", got.revenue_by_day, expected.revenue_by_day),
        ("revenue by day and category", got.revenue_by_day_category,
         expected.revenue_by_day_category),
        ("units sold by day", got.units_by_day, expected.units_by_day),
        ("orders by day", got.orders_by_day, expected.orders_by_day),
    ]
    if len(expected.catalogues) == 1:  # product_analytics keeps one category per product
        pairs.append(("units sold by day and category", got.units_by_day_category,
                      expected.units_by_day_category))
    compared = 0
    for label, actual, wanted in pairs:
        assert only(actual) == only(wanted), label
        compared += len(only(wanted))
    processed = processed_by_day_type(settings, days)
    assert processed == only(expected.by_day_type), "processed_events by day and event type"
    return compared + len(processed)


def marts_digest(settings: Settings, day: str) -> dict[str, str]:
    """sha256 per mart of the day's rows (every column but the write-time ones, as text,
    rows sorted), for comparing two builds."""
    digests = {}
    for relation, day_column in DAY_MARTS.items():
        schema, _, table = relation.partition(".")
        columns = [c for (c,) in query(settings, """
            select column_name from information_schema.columns
            where table_schema = %s and table_name = %s order by ordinal_position""",
            (schema, table)) if c not in WRITE_TIME_COLUMNS]
        assert columns, f"{relation} does not exist"
        select = ", ".join(f'coalesce("{c}"::text, \'<null>\')' for c in columns)
        rows = query(settings, f"select {select} from {relation} where {day_column} = %s",
                     (date.fromisoformat(day),))
        assert rows, f"{relation} has no rows for {day}"
        h = hashlib.sha256()
        for row in sorted(rows):
            h.update("\x1f".join(row).encode() + b"\x1e")
        digests[relation] = f"{len(rows)} rows sha256 {h.hexdigest()[:16]}"
    return digests


def show(capsys: pytest.CaptureFixture[str], *lines: str) -> None:
    """Print to the terminal even while pytest captures output (figures in CI logs)."""
    with capsys.disabled():
        for line in lines:
            print(f"\n  {line}", end="")
        print()

