"""What a layer validates: data assets (SQL over one logical day) and their suites.

The logical date reaches PostgreSQL as the session setting `ecom.logical_date`, which the
gate puts in the connection options of GE's datasource for the run. Each asset's query
filters on it with an index-friendly predicate, so a batch is exactly the day's rows and
costs the same whatever the table's history (GE's column partitioners would instead
enumerate every day of the table and filter with EXTRACT(), scanning it whole).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import great_expectations as gx

from expectations.tables import Table

LOGICAL_DATE_SETTING = "ecom.logical_date"
#: the run's logical date in SQL (NULL when no date is set: every day query is then empty)
LOGICAL_DAY = f"current_setting('{LOGICAL_DATE_SETTING}', true)::date"
DAY_START = f"({LOGICAL_DAY})::timestamp at time zone 'UTC'"
DAY_END = f"({LOGICAL_DAY} + 1)::timestamp at time zone 'UTC'"


def day_filter(table: Table, alias: str = "") -> str:
    """SQL predicate keeping the rows of `table` that belong to the logical day."""
    column = f"{alias}.{table.day_column}" if alias else table.day_column
    if table.day_column_is_timestamp:
        return f"{column} >= {DAY_START} and {column} < {DAY_END}"
    return f"{column} = {LOGICAL_DAY}"


def day_query(table: Table) -> str:
    return f"select * from {table.qualified} where {day_filter(table)}"


@dataclass(frozen=True)
class AssetSpec:
    """A GE query asset holding one logical day of data."""

    name: str
    query: str


@dataclass(frozen=True)
class ValidationSpec:
    """One validation definition: a suite run against an asset's day."""

    asset: AssetSpec
    suite_name: str
    build_suite: Callable[[], gx.ExpectationSuite]

    @property
    def name(self) -> str:
        return f"{self.suite_name}__logical_day"
