"""Expectations on the event grain shared by raw.raw_events and the staging view.

They restate the event contract of `ecom.events` (required fields, event types, product
and quantity rules) as Great Expectations, so the contract is checked on the stored data,
not only at ingestion.
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from ecom.events import EVENT_TYPES, QUANTITY_EVENT_TYPES, REQUIRED_FIELDS

#: plausible ranges (the shop's catalogue tops out at a few thousand; carts at dozens)
PRICE_RANGE = (0, 100_000)
QUANTITY_RANGE = (1, 1_000)

IPV4_REGEX = (
    r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
    r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$"
)
IPV6_REGEX = r"^([0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}$"


def _sql_list(values: object) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))  # type: ignore[attr-defined]


def event_contract_expectations() -> list[gxe.Expectation]:
    """Completeness, accepted values, ranges and per-type field rules of an event row."""
    expectations: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToNotBeNull(
            column=name, description=f"required field {name} is present"
        )
        for name in REQUIRED_FIELDS
    ]
    quantity_types = _sql_list(QUANTITY_EVENT_TYPES)
    expectations += [
        gxe.ExpectColumnValuesToBeInSet(
            column="event_type", value_set=list(EVENT_TYPES),
            description="event_type is one of the contract's event types",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="price", min_value=PRICE_RANGE[0], max_value=PRICE_RANGE[1],
            description=f"price within {PRICE_RANGE}",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="quantity", min_value=QUANTITY_RANGE[0], max_value=QUANTITY_RANGE[1],
            description=f"quantity within {QUANTITY_RANGE}",
        ),
        gxe.ExpectColumnValuesToMatchRegexList(
            column="ip_address", regex_list=[IPV4_REGEX, IPV6_REGEX], match_on="any",
            description="ip_address is an IPv4 or IPv6 address",
        ),
        gxe.UnexpectedRowsExpectation(
            description="purchase rows carry price and quantity",
            unexpected_rows_query=(
                "select event_id, price, quantity from {batch} "
                "where event_type = 'purchase' and (price is null or quantity is null)"
            ),
        ),
        gxe.UnexpectedRowsExpectation(
            description="every event but page_view carries product_id, category and price",
            unexpected_rows_query=(
                "select event_id, event_type from {batch} "
                "where event_type <> 'page_view' "
                "and (product_id is null or category is null or price is null)"
            ),
        ),
        gxe.UnexpectedRowsExpectation(
            description=f"{quantity_types} events carry a quantity",
            unexpected_rows_query=(
                "select event_id, event_type from {batch} "
                f"where event_type in ({quantity_types}) and quantity is null"
            ),
        ),
    ]
    return expectations
