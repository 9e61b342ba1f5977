{% macro source_freshness_hours(source_name, table_name, level) %}
{#- A source table's freshness threshold in hours, as a SQL literal: `level`
    is 'warn_after' or 'error_after', read from the source's YAML (the one
    place the thresholds are set); null when none is set. -#}
    {%- set hours = {'minute': 1 / 60, 'hour': 1, 'day': 24} -%}
    {%- if execute -%}
        {%- for node in graph.sources.values() -%}
            {%- if node.source_name == source_name
                and node.name == table_name -%}
                {%- set after = (node.freshness or {}).get(level) or {} -%}
                {%- if after.get('count') and after.get('period') -%}
                    {{- return(
                        '%.4f' % (after['count'] * hours[after['period']])
                        ~ '::numeric'
                    ) -}}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- return('null::numeric') -}}
{% endmacro %}


{% macro newest_value(relation, column, windows=('1 hour', '1 day', '7 days')) %}
{#- SQL expression: max(`column`) of `relation`, looked for in the recent
    `windows` first. dbt's views begin with import CTEs, so PostgreSQL plans
    them apart from the query reading them: a bare max() through one is a full
    scan, but a `column > now() - interval` filter is pushed down to the
    table's index. The full scan runs only when nothing is in the widest
    window (coalesce evaluates lazily). -#}
    coalesce(
        {%- for window in windows %}
        (
            select max({{ column }}) from {{ relation }}
            where {{ column }} > now() - interval '{{ window }}'
        ),
        {%- endfor %}
        (select max({{ column }}) from {{ relation }})
    )
{%- endmacro %}
