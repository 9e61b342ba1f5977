{% macro date_ranges(dates, pad_days=0) %}
{#- ISO dates -> sorted list of [start, end) ranges (ISO strings), each date
    widened by pad_days on both sides and overlapping ranges merged. -#}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {%- set pad = modules.datetime.timedelta(days=pad_days) -%}
    {%- set ranges = [] -%}
    {%- for text in dates | map('string') | unique | sort -%}
        {%- set day = modules.datetime.date.fromisoformat(text[:10]) -%}
        {%- set start = day - pad -%}
        {%- set end = day + one_day + pad -%}
        {%- if ranges and start <= ranges[-1][1] -%}
            {%- set last = ranges.pop() -%}
            {%- do ranges.append([last[0], [last[1], end] | max]) -%}
        {%- else -%}
            {%- do ranges.append([start, end]) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set iso = [] -%}
    {%- for r in ranges -%}
        {%- do iso.append([r[0].isoformat(), r[1].isoformat()]) -%}
    {%- endfor -%}
    {{- return(iso) -}}
{% endmacro %}


{% macro time_in_dates(column, dates, pad_days=0) %}
{#- SQL predicate: timestamptz `column` falls on one of the UTC `dates`
    (+/- pad_days), as index-friendly range comparisons; `false` when empty. -#}
    {%- set ranges = date_ranges(dates, pad_days) -%}
    {%- if ranges | length == 0 -%}
        false
    {%- else -%}
        ({% for r in ranges -%}
            ({{ column }} >= '{{ r[0] }} 00:00:00+00'::timestamptz
            and {{ column }} < '{{ r[1] }} 00:00:00+00'::timestamptz)
            {%- if not loop.last %} or {% endif -%}
        {%- endfor %})
    {%- endif -%}
{% endmacro %}


{% macro date_in(column, dates, pad_days=0) %}
{#- SQL predicate: date `column` is one of `dates` (+/- pad_days). -#}
    {%- set ranges = date_ranges(dates, pad_days) -%}
    {%- if ranges | length == 0 -%}
        false
    {%- else -%}
        ({% for r in ranges -%}
            ({{ column }} >= '{{ r[0] }}'::date
            and {{ column }} < '{{ r[1] }}'::date)
            {%- if not loop.last %} or {% endif -%}
        {%- endfor %})
    {%- endif -%}
{% endmacro %}


{% macro neighbour_dates(dates, pad_days=1) %}
{#- The days within pad_days of `dates` that are not themselves in `dates`
    (ISO strings, sorted). -#}
    {%- set own = dates | map('string') | map('truncate', 10, true, '') | list -%}
    {%- set found = [] -%}
    {%- for text in own -%}
        {%- set day = modules.datetime.date.fromisoformat(text) -%}
        {%- for offset in range(-pad_days, pad_days + 1) -%}
            {%- set other = (
                day + modules.datetime.timedelta(days=offset)
            ).isoformat() -%}
            {%- if other not in own and other not in found -%}
                {%- do found.append(other) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{- return(found | sort) -}}
{% endmacro %}


{% macro date_any(column, dates) %}
{#- SQL predicate: date `column` is one of `dates`, as `= any(array)`: unlike
    the ranges of date_in, an index-only scan can take it (a range per date
    joined with `or` needs a bitmap scan of the heap). -#}
    {%- set days = dates | map('string') | map('truncate', 10, true, '') -%}
    {%- if dates | length == 0 -%}
        false
    {%- else -%}
        {{ column }} = any('{{ '{' ~ (days | join(',')) ~ '}' }}'::date[])
    {%- endif -%}
{% endmacro %}
