"""Staging layer: the typed event view dbt builds on raw, one logical day at a time.

The grain (one row per event_id) is checked here, after typing: raw's primary key makes
it hold at landing, and this is where a model change that fans rows out would show. The
day must also hold exactly the day's raw events: nothing dropped, nothing doubled.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.suites.events_contract import event_contract_expectations
from expectations.suites.specs import AssetSpec, ValidationSpec, day_filter, day_query
from expectations.tables import RAW_EVENTS, STG_EVENTS

STG_EVENTS_ASSET = AssetSpec(name="stg_events", query=day_query(STG_EVENTS))


def stg_events_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="stg_events", expectations=[
        gxe.ExpectColumnValuesToBeUnique(column="event_id", description="one row per event_id"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="event_date", description="every event has a UTC event_date"
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="the day has events"),
        gxe.UnexpectedRowsExpectation(
            description="the day holds exactly the day's raw events",
            unexpected_rows_query=(
                "select staged, landed from (select count(*) as staged from {batch}) as s "
                f"cross join (select count(*) as landed from {RAW_EVENTS.qualified} "
                f"where {day_filter(RAW_EVENTS)}) as r where staged <> landed"
            ),
        ),
        *event_contract_expectations(),
    ])


VALIDATIONS = (ValidationSpec(STG_EVENTS_ASSET, "stg_events", stg_events_suite),)
