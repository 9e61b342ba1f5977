"""A contract-clean synthetic day in the raw landing tables, generated inside PostgreSQL.

For `bench/quality.py`: a million rows load in about half a minute with one
`insert ... select ... from generate_series` (mostly index upkeep), 2-3x faster
than simulating, validating and COPYing them. Rows carry their own Kafka topic name
(`SYNTHETIC_TOPIC`), so they never collide with ingested data and a day can be reloaded.
"""

from __future__ import annotations

from datetime import date

import psycopg2.extensions

SYNTHETIC_TOPIC = "synthetic.ecommerce-events"

_DELETE_DAY = """
delete from raw.raw_events
where kafka_topic = %(topic)s
    and event_timestamp >= %(day)s::date and event_timestamp < %(day)s::date + 1;
delete from raw.rejected_events
where kafka_topic = %(topic)s and kafka_partition = %(reject_partition)s;
"""

# Eight events per session: a funnel of views, carts, a wishlist add and (in half the
# sessions) a purchase; timestamps spread evenly over the UTC day.
_INSERT_EVENTS = """
insert into raw.raw_events (
    event_id, user_id, session_id, event_type, event_timestamp, product_id, category,
    price, quantity, page_url, user_agent, ip_address, raw_data, kafka_topic,
    kafka_partition, kafka_offset, kafka_timestamp
)
select
    event_id, user_id, session_id, event_type, event_timestamp, product_id, category,
    price, quantity, page_url, user_agent, ip_address,
    jsonb_strip_nulls(jsonb_build_object(
        'event_id', event_id::text, 'user_id', user_id, 'session_id', session_id,
        'event_type', event_type,
        'event_timestamp',
        to_char(event_timestamp at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'product_id', product_id, 'category', category, 'price', price,
        'quantity', quantity, 'page_url', page_url, 'user_agent', user_agent,
        'ip_address', ip_address
    )),
    %(topic)s, 0, %(offset_base)s + i, event_timestamp
from (
    select
        i,
        gen_random_uuid() as event_id,
        'user_' || lpad(((i / 8) %% 50000)::text, 6, '0') as user_id,
        %(day)s || '-s' || (i / 8) as session_id,
        step.event_type,
        %(day)s::timestamptz + (i * interval '86399.999 seconds') / %(rows)s as event_timestamp,
        case when step.has_product then 'P' || lpad((i * 7 %% 500)::text, 5, '0') end
            as product_id,
        case when step.has_product
            then (array['electronics', 'fashion', 'home', 'books'])[1 + i * 7 %% 500 %% 4]
        end as category,
        case when step.has_product then round(4.99 + (i * 7 %% 500) * 1.5, 2) end as price,
        case when step.event_type in ('add_to_cart', 'remove_from_cart', 'purchase')
            then 1 + i %% 3 end as quantity,
        'https://shop.example.com/p/' || (i * 7 %% 500) as page_url,
        'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0' as user_agent,
        '10.' || (i / 8 %% 250) || '.' || (i / 2000 %% 250) || '.' || (1 + i %% 250)
            as ip_address
    from generate_series(0, %(rows)s - 1) as g (i)
    cross join lateral (
        select
            (array['page_view', 'page_view', 'page_view', 'add_to_cart', 'wishlist_add',
                   'add_to_cart', 'remove_from_cart',
                   case when (i / 8) %% 2 = 0 then 'purchase' else 'page_view' end
            ])[1 + i %% 8] as event_type,
            i %% 8 <> 0 as has_product
    ) as step
) as events
"""

_INSERT_REJECTS = """
insert into raw.rejected_events (
    kafka_topic, kafka_partition, kafka_offset, kafka_key, kafka_timestamp, raw_value,
    raw_size_bytes, event_id, reason_code, reason_message
)
select
    %(topic)s, %(reject_partition)s, %(offset_base)s + i, 'user_000001', now(), raw_value,
    length(raw_value), null, 'negative_price', 'price -1.00 is negative'
from generate_series(0, %(rejects)s - 1) as g (i)
cross join lateral (
    select '{"event_type":"purchase","price":-1.00,"event_timestamp":"'
        || %(day)s || 'T12:00:00.000Z"}' as raw_value
) as payload
"""


def _reject_partition(day: date) -> int:
    return day.toordinal()


def load_day(conn: psycopg2.extensions.connection, day: date, rows: int,
             reject_ratio: float = 0.01) -> None:
    """Replace the synthetic rows of `day`: `rows` valid events plus rejected records.

    Needs a role that may delete from raw (the admin): the loader lane only appends.
    """
    rejects = round(rows * reject_ratio / (1 - reject_ratio))
    params = {
        "topic": SYNTHETIC_TOPIC,
        "day": day.isoformat(),
        "rows": rows,
        "rejects": rejects,
        "offset_base": day.toordinal() * 10_000_000_000,
        "reject_partition": _reject_partition(day),
    }
    with conn.cursor() as cur:
        cur.execute(_DELETE_DAY, params)
        cur.execute(_INSERT_EVENTS, params)
        if rejects:
            cur.execute(_INSERT_REJECTS, params)
    conn.commit()
