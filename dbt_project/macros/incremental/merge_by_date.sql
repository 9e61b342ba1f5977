{% macro get_incremental_merge_by_date_sql(arg_dict) %}
{#- Custom incremental strategy `merge_by_date`: dbt's merge, with the target
    side restricted to the dates present in the new rows (meta
    `merge_date_column`, widened by `merge_date_pad_days`). PostgreSQL then
    reads those days through the date index instead of scanning the whole
    table to match keys, so the merge's cost follows the new data. Valid when
    a row's date never moves further than the pad (event dates never move; a
    session's start date moves back at most one day). -#}
    {%- set meta = config.get('meta') or {} -%}
    {%- set column = meta.get('merge_date_column') -%}
    {%- if not column -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'merge_by_date' needs meta.merge_date_column"
        ) }}
    {%- endif -%}
    {%- set query -%}
        select distinct {{ column }}::text
        from {{ arg_dict['temp_relation'] }}
        where {{ column }} is not null
    {%- endset -%}
    {%- set dates = run_query(query).columns[0].values() | list -%}
    {%- set predicates = (arg_dict['incremental_predicates'] or []) + [
        date_in(
            'DBT_INTERNAL_DEST.' ~ column, dates,
            meta.get('merge_date_pad_days', 0)
        )
    ] -%}
    {{ return(get_merge_sql(
        arg_dict['target_relation'], arg_dict['temp_relation'],
        arg_dict['unique_key'], arg_dict['dest_columns'], predicates
    )) }}
{% endmacro %}
