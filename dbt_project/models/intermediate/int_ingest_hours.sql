{{
    config(
        materialized='incremental',
        unique_key='committed_hour',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['committed_hour'], 'unique': True}],
    )
}}

with

batches as (

    select * from {{ ref('stg_ops__ingest_batches') }}
    {% if is_incremental() -%}
    -- recount the newest hour held (it may have been partial) and the one
    -- before it (a batch's committed_at is its transaction's start), then
    -- every newer hour; committed_at is indexed in ops
    where
        committed_at >= (
            select
                coalesce(
                    max(held.committed_hour) - interval '1 hour', '-infinity'
                ) as since
            from {{ this }} as held
        )
    {%- endif %}

),

final as (

    {{ ledger_hours('batches') }}

)

select * from final
