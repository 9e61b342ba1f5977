{#- One row per source table: (source, table, staging model, loaded-at
    expression). The rejected lane is as fresh as the ingest ledger, the same
    rule as its loaded_at_query in _ecommerce__sources.yml. -#}
{%- set lanes = [
    ('ecommerce', 'raw_events', 'ingested_at',
     '(select max(ingested_at) from ' ~ ref('stg_ecommerce__events') ~ ')'),
    ('ecommerce', 'rejected_events', 'received_at',
     'greatest((select max(received_at) from '
     ~ ref('stg_ecommerce__rejected_events')
     ~ '), (select max(committed_at) from '
     ~ ref('stg_ops__ingest_batches') ~ '))'),
    ('ecommerce', 'realtime_metrics', 'updated_at',
     '(select max(updated_at) from '
     ~ ref('stg_ecommerce__realtime_metrics') ~ ')'),
    ('ops', 'ingest_batches', 'committed_at',
     '(select max(committed_at) from ' ~ ref('stg_ops__ingest_batches') ~ ')'),
    ('ops', 'data_quality_logs', 'logged_at',
     '(select max(logged_at) from ' ~ ref('stg_ops__data_quality_logs') ~ ')'),
    ('ops', 'pipeline_execution_logs', 'logged_at',
     '(select max(logged_at) from '
     ~ ref('stg_ops__pipeline_execution_logs') ~ ')'),
] -%}

with

loaded as (

    {% for source_name, table_name, column, loaded_at in lanes %}
    select
        '{{ source_name }}'::text as source_name,
        '{{ table_name }}'::text as table_name,
        '{{ column }}'::text as loaded_at_column,
        {{ loaded_at }} as last_loaded_at,
        {{ source_freshness_hours(source_name, table_name, 'warn_after') }}
            as warn_after_hours,
        {{ source_freshness_hours(source_name, table_name, 'error_after') }}
            as error_after_hours
    {% if not loop.last %}
    union all
    {% endif %}
    {%- endfor %}

),

final as (

    -- evaluated when read (a view): the age is the age now
    select
        source_name || '.' || table_name as source_table,
        source_name,
        table_name,
        loaded_at_column,
        last_loaded_at,
        (
            extract(epoch from now() - last_loaded_at) / 3600
        )::numeric(12, 2) as age_hours,
        warn_after_hours::numeric(8, 2) as warn_after_hours,
        error_after_hours::numeric(8, 2) as error_after_hours,
        case
            when last_loaded_at is null then 'no data'
            when
                now() - last_loaded_at > error_after_hours * interval '1 hour'
                then 'error'
            when
                now() - last_loaded_at > warn_after_hours * interval '1 hour'
                then 'warn'
            else 'pass'
        end as status

    from loaded

)

select * from final
