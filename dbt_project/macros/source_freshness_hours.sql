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
