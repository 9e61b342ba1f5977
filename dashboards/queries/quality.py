"""Data quality page: gate results per day and layer (the newest run of each), the failing
expectations with their unexpected counts, the pass-rate trend, each source's freshness,
and the reject ratio of ingestion per day of arrival: dead letters / records landed (valid
or dead letter; a replay's records skipped as already landed count in neither)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from dashboards.warehouse import Query, Warehouse

FAILING_LIMIT = 100

BOUNDS = Query("bounds", """
select
    min(logical_date) as first_date,
    max(logical_date) as last_date,
    count(*) as runs
from analytics.quality_gate_runs
""")

GATES = Query("gates", """
select
    logical_date,
    layer,
    run_id,
    run_started_at,
    expectations,
    expectations_failed,
    is_success,
    pass_rate
from analytics.quality_gate_runs
where is_latest_for_day
    and logical_date between %(start)s and %(end)s
order by logical_date, layer
""")

FAILING = Query("failing", f"""
select
    results.logical_date,
    results.layer,
    results.suite_name,
    results.expectation_type,
    results.column_name,
    results.unexpected_count,
    results.element_count,
    results.unexpected_percent,
    results.observed_value_number
from analytics.quality_expectation_results as results
inner join analytics.quality_gate_runs as runs
    on results.run_id = runs.run_id
where runs.is_latest_for_day
    and not results.is_success
    and results.logical_date between %(start)s and %(end)s
order by results.logical_date desc, results.layer, results.suite_name,
    results.expectation_type, results.column_name
limit {FAILING_LIMIT}
""")

FRESHNESS = Query("freshness", """
select
    source_table,
    loaded_at_column,
    last_loaded_at,
    age_hours,
    warn_after_hours,
    error_after_hours,
    status
from analytics.source_freshness
order by source_table
""")

REJECTS = Query("reject_ratio", """
select
    committed_date as date,
    sum(rows_valid) as rows_valid,
    sum(rows_rejected) as rows_rejected,
    sum(rows_duplicate) as rows_duplicate,
    sum(rows_rejected)::numeric / nullif(sum(rows_valid + rows_rejected), 0) as reject_ratio
from analytics.ingestion_hourly
where committed_hour >= date_trunc('day', now(), 'UTC') - (%(arrival_days)s - 1) * interval '1 day'
group by committed_date
order by committed_date
""")

QUERIES = (BOUNDS, GATES, FAILING, FRESHNESS, REJECTS)


def load(wh: Warehouse, start: date, end: date, arrival_days: int) -> dict[str, pd.DataFrame]:
    params: dict[str, Any] = {"start": start, "end": end, "arrival_days": arrival_days}
    return wh.frames([GATES, FAILING, FRESHNESS, REJECTS], params)
