-- The day's headline KPIs, one row per UTC date (what `make demo` prints):
-- events and revenue from daily_aggregations; sessions, orders, conversion and
-- average order value from user_sessions by the day the session started (an
-- order is a session with a purchase, so orders are not summed over
-- categories).
-- Compile with: dbt compile --select headline_kpis (SQL in target/compiled/).

with

daily as (

    select
        date,
        sum(total_events) as events,
        sum(total_revenue) as revenue
    from {{ ref('daily_aggregations') }}
    group by date

),

sessions as (

    select
        session_date as date,
        count(*) as sessions,
        count(*) filter (where is_converted) as orders,
        sum(revenue) as order_revenue
    from {{ ref('user_sessions') }}
    group by session_date

),

final as (

    select
        daily.date,
        daily.events,
        sessions.sessions,
        sessions.orders,
        daily.revenue,
        round(sessions.orders::numeric / nullif(sessions.sessions, 0), 4)
            as session_conversion_rate,
        round(sessions.order_revenue / nullif(sessions.orders, 0), 2)
            as avg_order_value
    from daily
    left join sessions
        on daily.date = sessions.date

)

select * from final
order by date
