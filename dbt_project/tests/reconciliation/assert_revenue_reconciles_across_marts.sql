-- Purchase revenue agrees day by day between processed_events,
-- daily_aggregations and product_analytics, and in total with user_sessions
-- and int_purchase_lines. One row per date (or 'total') that disagrees.
-- Days are compared from the marts' retention edge on (ops.pruned_days):
-- before it, the daily marts lost whole days and the others whole sessions.

with

marts_edge as (

    select coalesce(max(pruned_date) + 1, '-infinity'::date) as first_whole_date
    from {{ ref('stg_ops__pruned_days') }}
    where layer = 'marts'

),

processed as (

    select
        event_date,
        sum(revenue) as revenue
    from {{ ref('processed_events') }}
    where
        event_type = 'purchase'
        and event_date >= (select marts_edge.first_whole_date from marts_edge)
    group by event_date

),

daily as (

    select
        date as event_date,
        sum(total_revenue) as revenue
    from {{ ref('daily_aggregations') }}
    where date >= (select marts_edge.first_whole_date from marts_edge)
    group by date

),

products as (

    select
        event_date,
        sum(revenue) as revenue
    from {{ ref('product_analytics') }}
    where event_date >= (select marts_edge.first_whole_date from marts_edge)
    group by event_date

),

by_date as (

    select
        coalesce(
            processed.event_date, daily.event_date, products.event_date
        )::text as checked,
        coalesce(processed.revenue, 0) as processed_revenue,
        coalesce(daily.revenue, 0) as daily_revenue,
        coalesce(products.revenue, 0) as product_revenue,
        null::numeric as session_revenue,
        null::numeric as purchase_line_revenue

    from processed
    full outer join daily
        on processed.event_date = daily.event_date
    full outer join products
        on coalesce(processed.event_date, daily.event_date)
        = products.event_date

),

totals as (

    select
        'total' as checked,
        (
            select coalesce(sum(revenue), 0)
            from {{ ref('processed_events') }}
            where event_type = 'purchase'
        ) as processed_revenue,
        (select coalesce(sum(daily_revenue), 0) from by_date) as daily_revenue,
        (select coalesce(sum(product_revenue), 0) from by_date)
        as product_revenue,
        (
            select coalesce(sum(revenue), 0)
            from {{ ref('user_sessions') }}
        ) as session_revenue,
        (
            select coalesce(sum(line_revenue), 0)
            from {{ ref('int_purchase_lines') }}
        ) as purchase_line_revenue

),

final as (

    select * from by_date
    where
        processed_revenue <> daily_revenue
        or processed_revenue <> product_revenue

    union all

    select * from totals
    where
        processed_revenue <> session_revenue
        or processed_revenue <> purchase_line_revenue

)

select * from final
