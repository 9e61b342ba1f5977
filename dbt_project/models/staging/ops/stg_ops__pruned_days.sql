with

source as (

    select * from {{ source('ops', 'pruned_days') }}

),

renamed as (

    select
        layer,
        day as pruned_date,
        pruned_at

    from source

)

select * from renamed
