"""The run's summary row in `ops.pipeline_run_reports`: what landed, what the gates said,
what the marts hold and what was published for the logical day."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ecom.config import Settings
from ecom.db import connection
from ecom_pipeline.days import day_bounds
from ecom_pipeline.execution_log import rows_for_run


@dataclass
class RunReport:
    dag_id: str
    run_id: str
    logical_date: date
    status: str
    raw_events: int
    rejected_events: int | None
    total_events: int
    total_revenue: Decimal
    aggregation_rows: int
    published_messages: int | None
    tasks_succeeded: int
    tasks_logged: int
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_started_at: datetime | None = None


def gate_results(settings: Settings, day: date) -> dict[str, dict[str, Any]]:
    """Per layer, the latest validation run for the day: success and expectation counts."""
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute(
            """with latest as (
                   select distinct on (layer) layer, run_id
                     from ops.data_quality_logs
                    where logical_date = %s
                    order by layer, run_started_at desc, log_id desc)
               select l.layer, l.run_id, count(*), count(*) filter (where not d.success)
                 from latest as l
                 join ops.data_quality_logs as d
                   on d.layer = l.layer and d.run_id = l.run_id
                group by l.layer, l.run_id""",
            (day,),
        )
        return {layer: {"run_id": run_id, "expectations": total, "failed": failed,
                        "success": failed == 0}
                for layer, run_id, total, failed in cur.fetchall()}


def build_report(settings: Settings, *, dag_id: str, run_id: str, day: date,
                 rejected_events: int | None, published_messages: int | None,
                 run_started_at: datetime | None) -> RunReport:
    start, end = day_bounds(day)
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute(
            """select count(*) from raw.raw_events
                where event_timestamp >= %s and event_timestamp < %s""",
            (start, end),
        )
        raw_events = cur.fetchone()[0]
    with connection(settings, "reader") as conn, conn.cursor() as cur:
        cur.execute(
            """select count(*), coalesce(sum(total_events), 0), coalesce(sum(total_revenue), 0)
                 from analytics.daily_aggregations where date = %s""",
            (day,),
        )
        rows, events, revenue = cur.fetchone()
    tasks = rows_for_run(settings, dag_id, run_id)
    return RunReport(
        dag_id=dag_id, run_id=run_id, logical_date=day, status="success",
        raw_events=raw_events, rejected_events=rejected_events, total_events=int(events),
        total_revenue=Decimal(revenue), aggregation_rows=rows,
        published_messages=published_messages,
        tasks_succeeded=sum(t.status == "success" for t in tasks), tasks_logged=len(tasks),
        gates=gate_results(settings, day), run_started_at=run_started_at,
    )


def write_report(settings: Settings, report: RunReport) -> None:
    """Insert the run's row (or replace it when the same run reports again)."""
    summary = json.dumps(asdict(report), default=str)
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute(
            """insert into ops.pipeline_run_reports
                   (dag_id, run_id, logical_date, status, raw_events, rejected_events,
                    total_events, total_revenue, aggregation_rows, published_messages,
                    tasks_succeeded, tasks_logged, gates, summary, run_started_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               on conflict (dag_id, run_id) do update set
                   logical_date = excluded.logical_date, status = excluded.status,
                   raw_events = excluded.raw_events,
                   rejected_events = excluded.rejected_events,
                   total_events = excluded.total_events,
                   total_revenue = excluded.total_revenue,
                   aggregation_rows = excluded.aggregation_rows,
                   published_messages = excluded.published_messages,
                   tasks_succeeded = excluded.tasks_succeeded,
                   tasks_logged = excluded.tasks_logged, gates = excluded.gates,
                   summary = excluded.summary, run_started_at = excluded.run_started_at,
                   reported_at = now()""",
            (report.dag_id, report.run_id, report.logical_date, report.status,
             report.raw_events, report.rejected_events, report.total_events,
             report.total_revenue, report.aggregation_rows, report.published_messages,
             report.tasks_succeeded, report.tasks_logged, json.dumps(report.gates, default=str),
             summary, report.run_started_at),
        )
