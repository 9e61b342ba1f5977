{{
    config(
        materialized='incremental',
        unique_key=['kafka_epoch', 'kafka_partition'],
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

with

{% if is_incremental() -%}
rolled_up as (

    select * from {{ this }}

),

{% endif -%}

partition_ranges as (

    select * from {{ ref('int_ingest_batch_partitions') }}
    {% if is_incremental() -%}
    -- the batches since the newest one held, from an hour earlier: a batch's
    -- committed_at is its transaction's start, and re-reading a batch
    -- changes no minimum or maximum
    where
        committed_at > (
            select
                coalesce(
                    max(rolled_up.last_committed_at) - interval '1 hour',
                    '-infinity'
                ) as since
            from rolled_up
        )
    {%- endif %}

),

final as (

    {% if is_incremental() -%}
    {{ partition_offsets('partition_ranges', 'rolled_up') }}
    {%- else -%}
    {{ partition_offsets('partition_ranges') }}
    {%- endif %}

)

select * from final
