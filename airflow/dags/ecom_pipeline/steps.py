"""What the pipeline's own tasks do, as plain functions of (settings, logical day).

The DAG file only wires these into tasks; each calls one stage (ingestion, expectations)
or this package's publish/report code, and returns a small dict of figures.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from ecom.config import Settings
from ecom.db import connection
from ecom_pipeline.days import day_bounds


class GateFailed(AirflowFailException):
    """A quality gate failed: fail the task at once (no retry: the data will not change by
    waiting) and stop everything downstream. Carries the gate's alert (its layer, run id
    and failed expectations), which the failure callback publishes with the task's
    coordinates."""

    def __init__(self, layer: str, headline: str, lines: list[str],
                 gate_alert: dict[str, Any]) -> None:
        self.layer = layer
        self.gate_alert = gate_alert
        self.failed_expectations = list(gate_alert.get("failed", []))
        super().__init__("\n".join([headline, *lines]))


def extract(settings: Settings, day: date) -> dict[str, Any]:
    """Spark batch catch-up from Kafka into raw, through the ingestion sink.

    First asks, without Spark, whether anything on the broker is not landed yet
    (`ingestion.backlog`): usually the stream landed it all, and then no Spark session is
    started (~10-15 s on 2 cores). Otherwise replays the whole topic (earliest to latest):
    the sink skips every coordinate already landed, so this lands exactly what is missing,
    once, and a rerun lands nothing. Not bounded by the day: Kafka timestamps are produce
    times, and a day's events may be produced later (backfills, late devices); whatever
    day they belong to, they are in raw afterwards. Returns the replay's counts and the
    day's rows.
    """
    from ingestion.backlog import topic_backlog  # pyarrow: at run time, not parse time

    log = logging.getLogger("ecom_pipeline.extract")
    backlog = topic_backlog(settings)
    log.info(backlog.line())
    if backlog.nothing_to_ingest:
        result: dict[str, Any] = {
            "ledger": None, "rows_read": 0, "rows_affected": 0, "rows_rejected": 0,
            "duplicates": 0, "already_landed": backlog.offsets,
            "seconds": round(backlog.seconds, 3), "spark": False}
    else:
        from ingestion.batch import replay  # pyspark and pyarrow: at run time, not parse time
        from ingestion.spark import build_session

        spark = build_session(settings, app_name="ecom-airflow-extract")
        try:
            stats = replay(settings, spark, "earliest", "latest", log=log.info)
        finally:
            spark.stop()
        result = {
            "ledger": stats.query_name, "rows_read": stats.rows, "rows_affected": stats.valid,
            "rows_rejected": stats.rejected, "duplicates": stats.duplicates,
            "already_landed": stats.settled, "seconds": round(stats.seconds, 3), "spark": True}
    start, end = day_bounds(day)
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute("select count(*) from raw.raw_events "
                    "where event_timestamp >= %s and event_timestamp < %s", (start, end))
        result["day_raw_events"] = cur.fetchone()[0]
    return result


def gate(settings: Settings, layer: str, day: date) -> dict[str, Any]:
    """Run the layer's Great Expectations checkpoint for the day (results go to
    ops.data_quality_logs); raise GateFailed naming each failed expectation if it fails."""
    from expectations.gate import run_gate  # great_expectations: at run time, not parse time
    from expectations.results import alert_payload

    # publish=False: the task's failure callback publishes this alert, once, enriched
    # with the DAG run and task (a retry or rerun must not be mistaken for a new failure)
    result = run_gate(settings, layer, day, publish=False)
    if not result.success:
        raise GateFailed(layer, result.headline(), [o.line() for o in result.failed],
                         alert_payload(result))
    summary = result.summary()
    summary["rows_affected"] = max((o.element_count or 0 for o in result.outcomes), default=0)
    return summary
