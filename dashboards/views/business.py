"""Business page: KPIs per day and category with date and category filters, the funnel by
device, cart abandonment, top products, RFM segments, products bought together."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from dashboards import charts, formatting
from dashboards.queries import business as q
from dashboards.views import common
from dashboards.warehouse import Warehouse
from ecom.config import Settings

DEFAULT_DAYS = 30
TTL_S = 600  # the marts change when dbt runs (daily); "Refresh now" reads them at once
STEPS = {"viewed": "1 viewed", "carted": "2 added to cart", "purchased": "3 purchased"}


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _bounds(_wh: Warehouse, key: str) -> q.Bounds:
    return q.bounds(_wh)


@st.cache_data(ttl=TTL_S, show_spinner="Reading the marts ...")
def _load(_wh: Warehouse, key: str, start: date, end: date,
          categories: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    return q.load(_wh, start, end, categories)


def day_range(picked: object, fallback: tuple[date, date]) -> tuple[date, date]:
    """The date input's value as (start, end): one picked day is a one-day range."""
    days = [d for d in (picked if isinstance(picked, tuple | list) else [picked])
            if isinstance(d, date)]
    if not days:
        return fallback
    return min(days), max(days)


def funnel_by_device(funnel: pd.DataFrame) -> pd.DataFrame:
    """Sessions per device reaching each step, with the step rates."""
    totals = funnel.groupby("device_type", as_index=False)[
        ["sessions", "viewed", "carted", "purchased", "abandoned"]].sum()
    totals["cart_rate"] = totals["carted"] / totals["sessions"]
    totals["conversion_rate"] = totals["purchased"] / totals["sessions"]
    totals["abandonment_rate"] = totals["abandoned"] / totals["carted"].where(totals["carted"] > 0)
    return totals.sort_values("sessions", ascending=False)


def abandonment_by_day(funnel: pd.DataFrame) -> pd.DataFrame:
    days = funnel.groupby("date", as_index=False)[["carted", "abandoned"]].sum()
    days["abandonment_rate"] = days["abandoned"] / days["carted"].where(days["carted"] > 0)
    return common.as_datetime(days, "date")


def _body(settings: Settings) -> None:
    wh, key = common.warehouse(settings), common.cache_key(settings)
    bounds = _bounds(wh, key)
    default = (max(bounds.first_date, bounds.last_date - timedelta(days=DEFAULT_DAYS - 1)),
               bounds.last_date)
    left, middle, right = st.columns([2, 5, 1], vertical_alignment="bottom")
    start, end = day_range(left.date_input(
        "Days (UTC)", value=default, min_value=bounds.first_date,
        max_value=bounds.last_date, key="business_days"), default)
    categories = tuple(middle.multiselect(
        "Categories", bounds.categories, default=list(bounds.categories),
        key="business_categories"))
    with right:
        common.refresh_button("business_refresh")
    data = _load(wh, key, start, end, categories)
    nothing = "" if categories else "No category selected: choose at least one above."

    kpis = data["kpis"].iloc[0]
    cols = st.columns(5)
    cols[0].metric("Revenue", formatting.money(kpis["revenue"]),
                   help="price x quantity of purchases in the selected categories")
    cols[1].metric("Orders", formatting.count(kpis["orders"]),
                   help="checkouts with a line in the selected categories, each counted once")
    cols[2].metric("Average order value", formatting.money(kpis["avg_order_value"]),
                   help="revenue / orders")
    cols[3].metric("Conversion", formatting.share(kpis["conversion_rate"]),
                   help="orders / sessions started in the range")
    cols[4].metric("Sessions", formatting.count(kpis["sessions"]),
                   help="sessions started in the range (all categories)")
    st.caption(f"{start} to {end}, {len(categories)} of {len(bounds.categories)} categories; "
               f"the marts hold {bounds.first_date} to {bounds.last_date}. "
               f"Read at {common.refreshed_at()}.")
    if nothing:
        st.warning(nothing)

    daily = common.as_datetime(data["daily"], "date")
    empty = nothing or "No purchases in these days and categories."
    st.subheader("Per day and category")
    one, two = st.columns(2)
    with one:
        common.chart(charts.over_time(daily, "date", "revenue", "category", mark="bar",
                                      title="Revenue", y_title="revenue", y_format=",.2f"),
                     daily, empty)
    with two:
        common.chart(charts.over_time(daily, "date", "orders", "category", mark="bar",
                                      title="Orders (an order with two categories counts in "
                                      "each)", y_title="orders"), daily, empty)
    one, two = st.columns(2)
    with one:
        common.chart(charts.over_time(daily, "date", "avg_order_value", "category",
                                      title="Average order value", y_title="per order",
                                      y_format=",.2f"), daily, empty)
    with two:
        common.chart(charts.over_time(daily, "date", "conversion_rate", "category",
                                      title="Conversion: sessions viewing the category "
                                      "that ordered in it", y_title="view-to-order rate",
                                      y_format=".1%"), daily, empty)

    st.subheader("Funnel and cart abandonment")
    st.caption("Sessions, whatever they looked at: the category filter does not apply here.")
    devices = funnel_by_device(data["funnel"])
    steps = devices.melt(id_vars="device_type", value_vars=list(STEPS), var_name="step",
                         value_name="count")
    steps["step"] = steps["step"].map(STEPS)
    one, two = st.columns(2)
    with one:
        common.chart(charts.bars(steps, "step", "count", colour="device_type",
                                 horizontal=False, sort=None,
                                 title="Funnel by device: view -> cart -> purchase",
                                 value_title="sessions"),
                     steps, "No sessions in these days.")
    with two:
        abandon = abandonment_by_day(data["funnel"])
        common.chart(charts.over_time(abandon, "date", "abandonment_rate", None,
                                      title="Cart abandonment: carts left without an order",
                                      y_title="abandoned / carted", y_format=".1%"),
                     abandon, "No cart in these days.")
    common.table(devices.rename(columns={"device_type": "device"}), "No sessions in these days.",
                 column_config={
                     "cart_rate": st.column_config.NumberColumn("cart rate", format="percent"),
                     "conversion_rate": st.column_config.NumberColumn("conversion",
                                                                      format="percent"),
                     "abandonment_rate": st.column_config.NumberColumn("abandonment",
                                                                       format="percent")})

    st.subheader("Top products")
    top = data["top_products"]
    one, two = st.columns([3, 2])
    with one:
        common.chart(charts.bars(top, "product_id", "revenue", title=f"Top {q.TOP_PRODUCTS} "
                                 "products by revenue", value_title="revenue",
                                 value_format=",.2f", extra_tooltip=["category:N", "units_sold:Q"]),
                     top, empty)
    with two:
        common.table(top[["product_id", "category", "revenue", "units_sold", "page_views"]],
                     empty, column_config={"revenue": st.column_config.NumberColumn(
                         format="%.2f")})

    st.subheader("Customers and recommendations")
    rfm = data["rfm"]
    one, two = st.columns(2)
    with one:
        as_of = rfm["as_of_date"].max() if not rfm.empty else None
        common.chart(charts.bars(rfm, "segment", "customers", title="RFM segments",
                                 value_title="customers", extra_tooltip=["revenue:Q"]),
                     rfm, "No customer has ordered yet.")
        st.caption(f"Every customer as of {as_of or '-'} (the newest order), whatever the "
                   "filters: recency, frequency and monetary quintiles.")
    with two:
        common.table(data["pairs"], empty if not categories else
                     "No two products bought together in these categories yet.",
                     column_config={"lift": st.column_config.NumberColumn(format="%.2f")})
        st.caption("Frequently bought together: product pairs by orders containing both, "
                   "with either product in the selected categories (all days).")
    common.table(rfm.drop(columns=["as_of_date"]), "No customer has ordered yet.",
                 column_config={"revenue": st.column_config.NumberColumn(format="%.2f"),
                                "avg_monetary": st.column_config.NumberColumn(
                                    "avg revenue", format="%.2f"),
                                "avg_orders": st.column_config.NumberColumn(format="%.2f"),
                                "avg_recency_days": st.column_config.NumberColumn(
                                    "avg days since last order", format="%.1f")})


def render() -> None:
    common.page("Business", _body,
                "Revenue, orders, order value and conversion from the marts (updated by each "
                "dbt run), by day and category.")
