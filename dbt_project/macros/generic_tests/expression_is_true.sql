{% test expression_is_true(model, expression, column_name=none) %}
{#- Fails for every row where the boolean SQL expression is not true (false or
    null). With column_name, the expression is appended to the column, e.g.
    `>= 0`. -#}

select *
from {{ model }}
where not coalesce(
    ({% if column_name %}{{ column_name }} {% endif %}{{ expression }}), false
)

{% endtest %}
