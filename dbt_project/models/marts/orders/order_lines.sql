with

lines as (

    select * from {{ ref('int_purchase_lines') }}

),

final as (

    select
        event_id,
        order_id,
        user_id,
        order_date,
        purchased_at,
        product_id,
        category,
        unit_price,
        quantity,
        line_revenue::numeric(14, 2) as line_revenue

    from lines

)

select * from final
