with

purchase_lines as (

    select * from {{ ref('int_purchase_lines') }}

),

customers as (

    select
        user_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(distinct order_id) as orders,
        sum(quantity) as units,
        sum(line_revenue) as monetary

    from purchase_lines
    group by user_id

),

as_of as (

    -- the newest order in the data, not the wall clock: reruns agree
    select max(order_date) as as_of_date from purchase_lines

),

measured as (

    select
        customers.*,
        as_of.as_of_date,
        as_of.as_of_date - customers.last_order_date as recency_days,
        round(customers.monetary / customers.orders, 2) as avg_order_value

    from customers
    cross join as_of

),

scored as (

    -- quintiles by percent rank: equal values always share a score
    select
        *,
        least(5, 1 + floor(5 * percent_rank() over (
            order by recency_days desc
        )))::integer as recency_score,
        least(5, 1 + floor(5 * percent_rank() over (
            order by orders asc
        )))::integer as frequency_score,
        least(5, 1 + floor(5 * percent_rank() over (
            order by monetary asc
        )))::integer as monetary_score

    from measured

),

final as (

    select
        user_id,
        first_order_date,
        last_order_date,
        orders,
        units,
        monetary,
        avg_order_value,
        recency_days,
        as_of_date,
        recency_score,
        frequency_score,
        monetary_score,
        recency_score::text
        || frequency_score::text
        || monetary_score::text as rfm_score,
        case
            when recency_score >= 4 and frequency_score >= 4
                then 'champions'
            when recency_score >= 3 and frequency_score >= 3
                then 'loyal_customers'
            when recency_score >= 4 and frequency_score = 1
                then 'new_customers'
            when recency_score >= 3
                then 'potential_loyalists'
            when frequency_score >= 3
                then 'at_risk'
            when recency_score = 2
                then 'hibernating'
            else 'lost'
        end as segment

    from scored

)

select * from final
