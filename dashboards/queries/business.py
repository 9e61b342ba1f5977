"""Business page: revenue, orders, average order value and conversion per day and category,
the funnel by device, cart abandonment, top products, RFM segments, products bought together.

Definitions (the same as the marts' docs):
- revenue: price x quantity of purchases in the selected categories, by event date;
- an order is one session's checkout (`order_lines.order_id`): orders over several
  categories are counted once (`count(distinct order_id)`), never summed per category;
- conversion: orders with a line in the selection / sessions started in the range;
  per category and day, `daily_aggregations`' view-to-order rate;
- funnel and cart abandonment count sessions (`daily_sessions`), whatever they looked at:
  a session is not in one category, so the category filter does not apply to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from dashboards.warehouse import NoData, Query, Warehouse

TOP_PRODUCTS = 10
TOP_PAIRS = 15

BOUNDS = Query("bounds", """
select
    min(date) as first_date,
    max(date) as last_date,
    coalesce(
        array_agg(distinct category) filter (where category <> '(none)'), '{}'
    ) as categories
from analytics.daily_aggregations
""")

KPIS = Query("kpis", """
with lines as (
    select order_id, line_revenue
    from analytics.order_lines
    where order_date between %(start)s and %(end)s
        and category = any(%(categories)s)
),
sessions as (
    select sum(sessions) as sessions
    from analytics.daily_sessions
    where session_date between %(start)s and %(end)s
)
select
    coalesce(sum(lines.line_revenue), 0) as revenue,
    count(distinct lines.order_id) as orders,
    sum(lines.line_revenue) / nullif(count(distinct lines.order_id), 0) as avg_order_value,
    count(distinct lines.order_id)::numeric / nullif(max(sessions.sessions), 0)
        as conversion_rate,
    max(sessions.sessions) as sessions
from sessions
left join lines on true
""")

DAILY = Query("daily", """
select
    date,
    category,
    sum(total_revenue) filter (where event_type = 'purchase') as revenue,
    sum(unique_sessions) filter (where event_type = 'purchase') as orders,
    max(avg_order_value) filter (where event_type = 'purchase') as avg_order_value,
    max(conversion_rate) filter (where event_type = 'page_view') as conversion_rate
from analytics.daily_aggregations
where date between %(start)s and %(end)s
    and category = any(%(categories)s)
group by date, category
order by date, category
""")

FUNNEL = Query("funnel", """
select
    session_date as date,
    device_type,
    sessions,
    viewed_sessions as viewed,
    carted_sessions as carted,
    converted_sessions as purchased,
    abandoned_sessions as abandoned
from analytics.daily_sessions
where session_date between %(start)s and %(end)s
order by session_date, device_type
""")

TOP = Query("top_products", f"""
select
    product_id,
    max(category) as category,
    sum(revenue) as revenue,
    sum(units_sold) as units_sold,
    sum(purchases) as purchases,
    sum(page_views) as page_views,
    sum(cart_sessions) as cart_sessions
from analytics.product_analytics
where event_date between %(start)s and %(end)s
    and category = any(%(categories)s)
group by product_id
order by sum(revenue) desc, sum(units_sold) desc, product_id
limit {TOP_PRODUCTS}
""")

RFM = Query("rfm", """
select
    segment,
    count(*) as customers,
    sum(monetary) as revenue,
    avg(monetary) as avg_monetary,
    avg(orders) as avg_orders,
    avg(recency_days) as avg_recency_days,
    max(as_of_date) as as_of_date
from analytics.customer_rfm_segments
group by segment
order by count(*) desc, segment
""")

PAIRS = Query("pairs", f"""
select
    product_id_a,
    product_id_b,
    category_a,
    category_b,
    orders_together,
    confidence_a_to_b,
    confidence_b_to_a,
    lift
from analytics.product_pairs
where category_a = any(%(categories)s) or category_b = any(%(categories)s)
order by orders_together desc, lift desc, product_id_a, product_id_b
limit {TOP_PAIRS}
""")

QUERIES = (BOUNDS, KPIS, DAILY, FUNNEL, TOP, RFM, PAIRS)


@dataclass(frozen=True)
class Bounds:
    """What the filters may choose from: the days and categories the marts hold."""

    first_date: date
    last_date: date
    categories: tuple[str, ...]


def bounds(wh: Warehouse) -> Bounds:
    """The marts' date range and categories; NoData when daily_aggregations is empty."""
    row = wh.frame(BOUNDS).iloc[0]
    if pd.isna(row["first_date"]):
        raise NoData("No data yet: run `make demo` (the marts hold no events).")
    return Bounds(row["first_date"], row["last_date"], tuple(sorted(row["categories"])))


def params(start: date, end: date, categories: tuple[str, ...]) -> dict[str, Any]:
    return {"start": start, "end": end, "categories": list(categories)}


def load(wh: Warehouse, start: date, end: date,
         categories: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """Everything the page draws for the chosen range and categories."""
    return wh.frames([KPIS, DAILY, FUNNEL, TOP, RFM, PAIRS], params(start, end, categories))
