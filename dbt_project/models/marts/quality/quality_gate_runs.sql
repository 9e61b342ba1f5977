with

results as (

    select * from {{ ref('quality_expectation_results') }}

),

runs as (

    select
        run_id,
        min(layer) as layer,
        min(logical_date) as logical_date,
        min(run_started_at) as run_started_at,
        max(logged_at) as logged_at,
        string_agg(distinct suite_name, ', ' order by suite_name) as suites,
        count(*) as expectations,
        count(*) filter (where not is_success) as expectations_failed

    from results
    group by run_id

),

final as (

    select
        run_id,
        layer,
        logical_date,
        run_started_at,
        logged_at,
        suites,
        expectations,
        expectations_failed,
        expectations_failed = 0 as is_success,
        (
            (expectations - expectations_failed)::numeric / expectations
        )::numeric(5, 4) as pass_rate,
        row_number() over (
            partition by logical_date, layer
            order by run_started_at desc, run_id desc
        ) = 1 as is_latest_for_day

    from runs

)

select * from final
