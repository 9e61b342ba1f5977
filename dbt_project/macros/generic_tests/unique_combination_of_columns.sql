{% test unique_combination_of_columns(model, combination_of_columns) %}
{#- Fails for every combination of the given columns that occurs more than once
    (the project's stand-in for dbt_utils.unique_combination_of_columns). -#}

with

grouped as (

    select
        {{ combination_of_columns | join(',\n        ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1

)

select * from grouped

{% endtest %}
