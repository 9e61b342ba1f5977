{#- One row per source table: (source, table, loaded-at column, the SQL of
    its newest value). The big, indexed lanes look in recent windows first
    (newest_value); the rejected lane is as fresh as the ingest ledger, the
    rule of its loaded_at_query in _ecommerce__sources.yml. -#}
{%- set events = ref('stg_ecommerce__events') -%}
{%- set rejected = ref('stg_ecommerce__rejected_events') -%}
{%- set realtime = ref('stg_ecommerce__realtime_metrics') -%}
{%- set batches = ref('stg_ops__ingest_batches') -%}
{%- set gates = ref('stg_ops__data_quality_logs') -%}
{%- set tasks = ref('stg_ops__pipeline_execution_logs') -%}
{%- set lanes = [
    ('ecommerce', 'raw_events', 'ingested_at',
     newest_value(events, 'ingested_at')),
    ('ecommerce', 'rejected_events', 'received_at',
     'greatest(' ~ newest_value(rejected, 'received_at') ~ ', '
     ~ newest_value(batches, 'committed_at') ~ ')'),
    ('ecommerce', 'realtime_metrics', 'updated_at',
     '(select max(updated_at) from ' ~ realtime ~ ')'),
    ('ops', 'ingest_batches', 'committed_at',
     newest_value(batches, 'committed_at')),
    ('ops', 'data_quality_logs', 'logged_at',
     '(select max(logged_at) from ' ~ gates ~ ')'),
    ('ops', 'pipeline_execution_logs', 'logged_at',
     '(select max(logged_at) from ' ~ tasks ~ ')'),
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
