with

purchase_lines as (

    select * from {{ ref('int_purchase_lines') }}

),

order_products as (

    select distinct
        order_id,
        product_id
    from purchase_lines

),

product_categories as (

    select
        product_id,
        max(category) as category
    from purchase_lines
    group by product_id

),

product_orders as (

    select
        product_id,
        count(*) as orders
    from order_products
    group by product_id

),

total_orders as (

    select count(distinct order_id) as orders from order_products

),

pairs as (

    select
        first_product.product_id as product_id_a,
        second_product.product_id as product_id_b,
        count(*) as orders_together

    from order_products as first_product
    inner join order_products as second_product
        on
            first_product.order_id = second_product.order_id
            and first_product.product_id < second_product.product_id
    group by first_product.product_id, second_product.product_id

),

final as (

    select
        pairs.product_id_a,
        pairs.product_id_b,
        category_a.category as category_a,
        category_b.category as category_b,
        pairs.orders_together,
        orders_a.orders as orders_with_a,
        orders_b.orders as orders_with_b,
        total_orders.orders as total_orders,
        round(pairs.orders_together::numeric / total_orders.orders, 6)
            as support,
        round(pairs.orders_together::numeric / orders_a.orders, 4)
            as confidence_a_to_b,
        round(pairs.orders_together::numeric / orders_b.orders, 4)
            as confidence_b_to_a,
        round(
            pairs.orders_together::numeric * total_orders.orders
            / (orders_a.orders * orders_b.orders),
            4
        ) as lift

    from pairs
    cross join total_orders
    inner join product_orders as orders_a
        on pairs.product_id_a = orders_a.product_id
    inner join product_orders as orders_b
        on pairs.product_id_b = orders_b.product_id
    inner join product_categories as category_a
        on pairs.product_id_a = category_a.product_id
    inner join product_categories as category_b
        on pairs.product_id_b = category_b.product_id

)

select * from final
