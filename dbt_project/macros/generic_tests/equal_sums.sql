{% test equal_sums(
    model, column_name, compare_model, compare_expression, group_by=none,
    compare_group_by=none, where=none, compare_where=none
) %}
{#- Reconciliation: sum(column_name) over this model equals
    sum(compare_expression) over compare_model, optionally per group (e.g. per
    date). Fails with one row per group whose totals differ. -#}

{%- set group_by = group_by or [] -%}
{%- set compare_group_by = compare_group_by or group_by -%}

with

this_side as (

    select
        {% for g in group_by %}{{ g }} as group_{{ loop.index }},
        {% endfor %}coalesce(sum({{ column_name }}), 0) as total
    from {{ model }}
    {% if where %}where {{ where }}{% endif %}
    {% if group_by %}group by {{ group_by | join(', ') }}{% endif %}

),

other_side as (

    select
        {% for g in compare_group_by %}{{ g }} as group_{{ loop.index }},
        {% endfor %}coalesce(sum({{ compare_expression }}), 0) as total
    from {{ compare_model }}
    {% if compare_where %}where {{ compare_where }}{% endif %}
    {% if compare_group_by %}
    group by {{ compare_group_by | join(', ') }}
    {% endif %}

),

compared as (

    select
        {% for g in group_by %}coalesce(
            this_side.group_{{ loop.index }}, other_side.group_{{ loop.index }}
        ) as group_{{ loop.index }},
        {% endfor %}this_side.total as model_total,
        other_side.total as compare_total
    from this_side
    full outer join other_side
        on true
        {% for g in group_by %}
        and this_side.group_{{ loop.index }}
        = other_side.group_{{ loop.index }}
        {% endfor %}

)

select * from compared
where coalesce(model_total, 0) <> coalesce(compare_total, 0)

{% endtest %}
