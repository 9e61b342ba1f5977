"""Raw layer: the landing tables as ingestion wrote them, for one logical (event) day.

- `raw_events`: the day's valid events. Typed columns plus the strings the producer sent
  (`raw_data`), so formats (uuid, ISO-8601 timestamp, ip) are checked on what arrived.
  Uniqueness of event_id is the table's primary key; it is checked again at staging.
- `raw_feed`: one row for the day: valid and rejected records, the reject ratio, and the
  newest ingest time of the whole feed (freshness is about now, not about the day).
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.params import FRESH_AFTER, MAX_REJECT_RATIO, VOLUME_MAX, VOLUME_MIN, param
from expectations.suites.events_contract import event_contract_expectations
from expectations.suites.specs import LOGICAL_DAY, AssetSpec, ValidationSpec, day_filter
from expectations.tables import RAW_EVENTS, REJECTED_EVENTS

#: layouts (LIKE patterns, evaluated far faster than regexes by PostgreSQL); ingestion has
#: already parsed both values, these catch non-canonical spellings it tolerates
UUID_LAYOUT = "________-____-____-____-____________"
ISO_TIMESTAMP_LAYOUTS = [
    "____-__-__T__:__:__%Z",
    "____-__-__T__:__:__%+__:__",
    "____-__-__T__:__:__%-__:__",
]

RAW_EVENTS_ASSET = AssetSpec(
    name="raw_events",
    query=f"""
select
    event_id,
    raw_data ->> 'event_id' as sent_event_id,
    user_id,
    session_id,
    event_type,
    event_timestamp,
    raw_data ->> 'event_timestamp' as sent_event_timestamp,
    product_id,
    category,
    price,
    quantity,
    page_url,
    user_agent,
    ip_address,
    ingested_at
from {RAW_EVENTS.qualified}
where {day_filter(RAW_EVENTS)}
""".strip(),
)

# One row: the day's valid and rejected records and the feed's newest ingest time.
# A rejected record belongs to the day its payload claims (like its valid siblings, so a
# backfilled day gets its own rejects); without a readable date, to the day it arrived.
# The claimed date is validated before any cast: a bad payload must not break the query.
RAW_FEED_ASSET = AssetSpec(
    name="raw_feed",
    query=f"""
select
    {LOGICAL_DAY} as event_date,
    valid.records as valid_events,
    rejected.records as rejected_events,
    coalesce(
        round(rejected.records::numeric / nullif(valid.records + rejected.records, 0), 6),
        0
    ) as reject_ratio,
    (select max(ingested_at) from {RAW_EVENTS.qualified}) as newest_ingested_at
from (
    select count(*) as records from {RAW_EVENTS.qualified} where {day_filter(RAW_EVENTS)}
) as valid
cross join (
    select count(*) as records
    from (
        select
            received_at,
            claimed_day,
            case
                when claimed_day ~ '^[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
                    then (left(claimed_day, 8) || '01')::date
                    + (right(claimed_day, 2)::int - 1)
            end as month_start_plus_days
        from (
            select
                received_at,
                substring(
                    raw_value
                    from '"event_timestamp"\\s*:\\s*"((19|20)[0-9]{{2}}-[0-9]{{2}}-[0-9]{{2}})T'
                ) as claimed_day
            from {REJECTED_EVENTS.qualified}
        ) as claims
    ) as checked_claims
    where coalesce(
        case
            when extract(day from month_start_plus_days) = right(claimed_day, 2)::int
                then month_start_plus_days
        end,
        (received_at at time zone 'UTC')::date
    ) = {LOGICAL_DAY}
) as rejected
""".strip(),
)


def raw_events_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="raw_events", expectations=[
        *event_contract_expectations(),
        gxe.ExpectColumnValuesToMatchLikePattern(
            column="sent_event_id", like_pattern=UUID_LAYOUT,
            description="the event_id the producer sent has the 8-4-4-4-12 UUID layout",
        ),
        gxe.ExpectColumnValuesToMatchLikePatternList(
            column="sent_event_timestamp", like_pattern_list=ISO_TIMESTAMP_LAYOUTS,
            match_on="any",
            description="the event_timestamp the producer sent is ISO-8601 with a zone",
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=param(VOLUME_MIN), max_value=param(VOLUME_MAX),
            description="the day's event volume is within bounds of the trailing days",
        ),
    ])


def raw_feed_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="raw_feed", expectations=[
        gxe.ExpectColumnMaxToBeBetween(
            column="reject_ratio", min_value=0, max_value=param(MAX_REJECT_RATIO),
            description="share of the day's records ingestion rejected is below the limit",
        ),
        gxe.ExpectColumnMaxToBeBetween(
            column="newest_ingested_at", min_value=param(FRESH_AFTER),
            description="the newest raw event landed within the freshness window",
        ),
    ])


VALIDATIONS = (
    ValidationSpec(RAW_EVENTS_ASSET, "raw_events", raw_events_suite),
    ValidationSpec(RAW_FEED_ASSET, "raw_feed", raw_feed_suite),
)
