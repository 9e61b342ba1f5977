"""The SQL of each dashboard page, one module per page, each with a `load` function that
runs exactly what the page shows (the tests and `bench/dashboard.py` call the same).

Every query reads `analytics.<mart>` only: `marts_read` lists them, and the dbt exposure
of each page declares the same set (checked by tests/unit/test_dashboards.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dashboards.queries import business, operations, quality, realtime
from dashboards.warehouse import Query

#: page name (its URL path) -> the queries its `load` may run
PAGES: dict[str, tuple[Query, ...]] = {
    "business": business.QUERIES,
    "realtime": realtime.QUERIES,
    "operations": operations.QUERIES,
    "quality": quality.QUERIES,
}

def relations_read(queries: Iterable[Query]) -> set[tuple[str, str]]:
    """(schema, relation) of every qualified relation in the queries' FROM/JOIN clauses."""
    found: set[tuple[str, str]] = set()
    for query in queries:
        sql = re.sub(r"extract\([^)]*\)", "", query.sql)  # `extract(epoch from t.column)`
        for clause in re.findall(r"\b(?:from|join)\s+(\w+\.\w+)", sql, re.I):
            schema, name = clause.split(".")
            found.add((schema.lower(), name.lower()))
    return found


def marts_read(queries: Iterable[Query]) -> set[str]:
    """The `analytics` relations the queries read."""
    return {name for schema, name in relations_read(queries) if schema == "analytics"}
