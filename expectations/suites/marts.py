"""Marts layer: the public tables in `analytics`, for one logical day.

- daily_aggregations: one row per (date, category, event_type); rates and money sane;
  avg_order_value = revenue / orders, where orders are the sessions with a purchase, i.e.
  the purchase row's unique_sessions (one checkout per session).
- user_sessions: a session ends no earlier than it starts.
- product_analytics: one row per (event_date, product_id); counters never negative.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.suites.specs import AssetSpec, ValidationSpec, day_query
from expectations.tables import (
    DAILY_AGGREGATIONS,
    DAILY_AGGREGATIONS_GRAIN,
    PRODUCT_ANALYTICS,
    PRODUCT_ANALYTICS_COUNTS,
    PRODUCT_ANALYTICS_GRAIN,
    PRODUCT_ANALYTICS_RATES,
    SESSION_END,
    SESSION_START,
    USER_SESSIONS,
)

#: tolerance of the avg_order_value check: the mart rounds to cents
AOV_TOLERANCE = 0.01


DAILY_AGGREGATIONS_ASSET = AssetSpec("daily_aggregations", day_query(DAILY_AGGREGATIONS))
USER_SESSIONS_ASSET = AssetSpec("user_sessions", day_query(USER_SESSIONS))
PRODUCT_ANALYTICS_ASSET = AssetSpec("product_analytics", day_query(PRODUCT_ANALYTICS))


def daily_aggregations_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="daily_aggregations", expectations=[
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="the day was built"),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=list(DAILY_AGGREGATIONS_GRAIN),
            description="one row per (date, category, event_type)",
        ),
        *(
            gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"grain column {c} is set")
            for c in DAILY_AGGREGATIONS_GRAIN
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="conversion_rate", min_value=0, max_value=1,
            description="conversion_rate is a share in [0, 1]",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="total_revenue", min_value=0, description="total_revenue is not negative",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="total_events", min_value=1, description="every row counts some events",
        ),
        gxe.UnexpectedRowsExpectation(
            description="avg_order_value = total_revenue / orders on purchase rows, else null",
            unexpected_rows_query=(
                "select date, category, event_type, total_revenue, unique_sessions, "
                "avg_order_value from {batch} where "
                "(event_type = 'purchase' and (avg_order_value is null "
                "or abs(avg_order_value - total_revenue / nullif(unique_sessions, 0)) "
                f"> {AOV_TOLERANCE})) "
                "or (event_type <> 'purchase' and avg_order_value is not null)"
            ),
        ),
    ])


def user_sessions_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="user_sessions", expectations=[
        gxe.ExpectColumnValuesToBeUnique(column="session_id", description="one row per session"),
        gxe.ExpectColumnValuesToNotBeNull(column="session_id", description="session_id is set"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=SESSION_END, column_B=SESSION_START, or_equal=True,
            description="a session ends no earlier than it starts",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="events", min_value=1, description="a session has at least one event",
        ),
    ])


def product_analytics_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="product_analytics", expectations=[
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=list(PRODUCT_ANALYTICS_GRAIN),
            description="one row per (event_date, product_id)",
        ),
        *(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=0, description=f"{column} is not negative"
            )
            for column in PRODUCT_ANALYTICS_COUNTS
        ),
        *(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=0, max_value=1, description=f"{column} is in [0, 1]"
            )
            for column in PRODUCT_ANALYTICS_RATES
        ),
    ])


VALIDATIONS = (
    ValidationSpec(DAILY_AGGREGATIONS_ASSET, "daily_aggregations", daily_aggregations_suite),
    ValidationSpec(USER_SESSIONS_ASSET, "user_sessions", user_sessions_suite),
    ValidationSpec(PRODUCT_ANALYTICS_ASSET, "product_analytics", product_analytics_suite),
)
