{% macro ledger_hours(batches) %}
{#- The ledger rows of `batches` (ingest batches: committed_at and the row
    counts) summed per UTC hour of commit, as a select statement: the rows of
    int_ingest_hours and of the hours ingestion_hourly counts live. -#}
    select
        date_trunc('hour', committed_at, 'UTC') as committed_hour,
        count(*) as batches,
        sum(rows_read)::bigint as rows_read,
        sum(rows_valid)::bigint as rows_valid,
        sum(rows_rejected)::bigint as rows_rejected,
        sum(rows_duplicate)::bigint as rows_duplicate,
        max(committed_at) as last_committed_at

    from {{ batches }}
    group by date_trunc('hour', committed_at, 'UTC')
{%- endmacro %}


{% macro partition_offsets(batch_partitions, rolled_up=none) %}
{#- Per topic epoch and partition, the lowest and the highest (exclusive)
    offset of the batches in `batch_partitions` (rows of
    int_ingest_batch_partitions), merged with `rolled_up` (rows of
    int_ingest_partition_offsets) when given: minima and maxima, so a batch
    read twice changes nothing. -#}
    select
        kafka_epoch,
        kafka_partition,
        min(first_offset) as first_offset,
        max(committed_offset) as committed_offset,
        max(last_committed_at) as last_committed_at

    from (
        select
            kafka_epoch,
            kafka_partition,
            start_offset as first_offset,
            end_offset as committed_offset,
            committed_at as last_committed_at
        from {{ batch_partitions }}
        {%- if rolled_up is not none %}
        union all
        select
            kafka_epoch,
            kafka_partition,
            first_offset,
            committed_offset,
            last_committed_at
        from {{ rolled_up }}
        {%- endif %}
    ) as offsets
    group by kafka_epoch, kafka_partition
{%- endmacro %}
