"""`ops.data_quality_logs`: one row per expectation per gate run (written as the loader)."""

from __future__ import annotations

from datetime import date

from psycopg2.extras import execute_values

from ecom.config import Settings
from ecom.db import connection
from expectations.results import GateResult, outcome_row
from expectations.tables import Table

DQ_LOGS = Table("ops", "data_quality_logs")
_COLUMNS = (
    "run_id", "layer", "suite_name", "expectation_type", "column_name", "expectation_kwargs",
    "success", "observed_value", "unexpected_count", "element_count", "logical_date",
    "run_started_at",
)


def write_logs(settings: Settings, result: GateResult) -> int:
    """Append the run's outcomes; returns the number of rows written."""
    rows = []
    for outcome in result.outcomes:
        row = outcome_row(outcome)
        row.update(run_id=result.run_id, layer=result.layer, logical_date=result.logical_date,
                   run_started_at=result.started_at)
        rows.append(tuple(row[c] for c in _COLUMNS))
    if not rows:
        return 0
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        execute_values(
            cur,
            f"insert into {DQ_LOGS.qualified} ({', '.join(_COLUMNS)}) values %s",
            rows,
            template="(" + ", ".join(
                "%s::jsonb" if c in {"expectation_kwargs", "observed_value"} else "%s"
                for c in _COLUMNS
            ) + ")",
        )
    return len(rows)


def previous_volumes(settings: Settings, logical_date: date, days: int = 7) -> list[int]:
    """Row counts the raw gate observed for the latest run of each of the previous days."""
    query = f"""
        select observed from (
            select distinct on (logical_date)
                logical_date, (observed_value #>> '{{}}')::bigint as observed
            from {DQ_LOGS.qualified}
            where layer = 'raw' and suite_name = 'raw_events'
                and expectation_type = 'expect_table_row_count_to_be_between'
                and logical_date < %(day)s and logical_date >= %(day)s::date - %(window)s
                and jsonb_typeof(observed_value) = 'number'
            order by logical_date, run_started_at desc
        ) as latest
    """
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute(query, {"day": logical_date, "window": 4 * days})
        values = [int(v) for (v,) in cur.fetchall()]
    return values[-days:]
