"""Every warehouse table and column the quality suites rely on, in one place.

Raw tables come from `ecom/warehouse/migrations`; staging views and marts from the dbt
project (`dbt_project/models`). If a dbt column is renamed, this is the file to change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    #: the column that assigns each row to a logical (UTC) day
    day_column: str = ""
    #: True: day_column is a timestamptz (a range filter), False: a date (equality)
    day_column_is_timestamp: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


# ---- raw landing (written by ingestion) --------------------------------------------------
RAW_EVENTS = Table("raw", "raw_events", "event_timestamp", day_column_is_timestamp=True)
REJECTED_EVENTS = Table("raw", "rejected_events")

# ---- dbt staging (views in analytics_staging) ---------------------------------------------
# filtered on event_timestamp (not the derived event_date) so the range reaches raw's index
STG_EVENTS = Table("analytics_staging", "stg_ecommerce__events", "event_timestamp",
                   day_column_is_timestamp=True)

# ---- dbt marts (tables in analytics) ------------------------------------------------------
DAILY_AGGREGATIONS = Table("analytics", "daily_aggregations", "date")
USER_SESSIONS = Table("analytics", "user_sessions", "session_date")
PRODUCT_ANALYTICS = Table("analytics", "product_analytics", "event_date")

#: daily_aggregations grain and measures
DAILY_AGGREGATIONS_GRAIN = ("date", "category", "event_type")
#: user_sessions interval columns
SESSION_START, SESSION_END = "session_started_at", "session_ended_at"
#: product_analytics grain, counters (>= 0) and rates (in [0, 1])
PRODUCT_ANALYTICS_GRAIN = ("event_date", "product_id")
PRODUCT_ANALYTICS_COUNTS = (
    "page_views",
    "cart_adds",
    "units_added_to_cart",
    "cart_removes",
    "wishlist_adds",
    "purchases",
    "units_sold",
    "revenue",
    "view_sessions",
    "cart_sessions",
    "purchase_sessions",
)
PRODUCT_ANALYTICS_RATES = (
    "view_to_purchase_rate",
    "cart_to_purchase_rate",
    "cart_abandonment_rate",
)
