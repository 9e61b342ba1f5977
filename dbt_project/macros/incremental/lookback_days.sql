{% macro lookback_days() %}
{#- Days an incremental run re-checks for late events: --vars lookback_days,
    else env ECOM_DBT_LOOKBACK_DAYS, else 3. -#}
    {%- set raw = var('lookback_days', none) -%}
    {%- if raw is none or raw == '' -%}
        {%- set raw = env_var('ECOM_DBT_LOOKBACK_DAYS', '3') -%}
    {%- endif -%}
    {%- set days = raw | int(-1) -%}
    {%- if days < 0 or (raw | string | trim) != (days | string) -%}
        {{ exceptions.raise_compiler_error(
            "lookback_days must be a whole number of days >= 0 (from --vars "
            ~ "lookback_days or ECOM_DBT_LOOKBACK_DAYS), got '" ~ raw ~ "'"
        ) }}
    {%- endif -%}
    {{- return(days) -}}
{% endmacro %}
