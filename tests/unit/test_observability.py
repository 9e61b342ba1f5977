"""Pure logic of observability: webhook messages (Slack JSON, dedupe keys, what each
failure says), the stream's metrics (counts, ages, lag) and the warehouse exporter's
families built from query rows. No network, no database (the dedupe ledger, the real
webhook receiver and real scrapes are in tests/integration/test_notifications.py and
test_stream_metrics.py)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from ecom_pipeline.dbt_results import failed_nodes
from ecom_pipeline.notifications import (
    attempts_text,
    dbt_failure_line,
    deadline_alert,
    deadline_notice,
    task_notice,
)
from prometheus_client import CollectorRegistry, generate_latest

from ecom.config import Settings
from ecom.errors import UserError
from ecom.metrics_http import serve_registry
from ecom.notifications import Delivery, Notice, notify, post_json, slack_message
from ecom_app.metrics.exporter import Readings, pipeline_state, warehouse_families
from expectations.notify import gate_notice
from ingestion.metrics import StreamMetrics, parse_spark_time
from ingestion.sink import BatchResult
from ingestion.validation import ValidEvent
from tests.unit.test_monitoring import sample_readings

GATE_ALERT = {
    "kind": "data_quality_alert", "layer": "raw", "logical_date": "2026-03-01",
    "run_id": "raw-2026-03-01-x", "expectations": 20, "failed_count": 2,
    "data_docs": "/repo/expectations/gx/uncommitted/data_docs/local_site/index.html",
    "failed": [
        {"suite": "raw_events", "expectation": "expect_column_values_to_be_in_set",
         "column": "event_type", "detail": "25 of 4,025 rows unexpected (0.621%), e.g. 'teleport'"},
        {"suite": "raw_feed", "expectation": "expect_column_values_to_be_between",
         "column": "reject_ratio", "detail": "observed 0.2, expected in [0, 0.05]"},
    ],
}
TASK_ALERT = {"kind": "pipeline_task_failed", "dag_id": "ecommerce_analytics_pipeline",
              "dag_run_id": "manual__2026-03-01", "task_id": "extract", "try_number": 3,
              "logical_date": "2026-03-01",
              "error": "UserError: Topic no-such-topic does not exist on 127.0.0.1:9092."}


# ---- messages --------------------------------------------------------------------------------
def test_gate_message_says_what_failed_for_which_day_with_counts_and_where_to_look() -> None:
    notice = gate_notice(GATE_ALERT, links=[("Airflow task log", "http://af/x?a=1&b=2")])
    assert notice.dedupe_key == "quality_gate|raw|2026-03-01"
    assert notice.title == "raw quality gate FAILED for 2026-03-01: 2 of 20 expectations failed"
    message = slack_message(notice)
    assert set(message) == {"text", "blocks"}
    text = message["text"]
    assert "expect_column_values_to_be_in_set(event_type): 25 of 4,025 rows unexpected" in text
    assert "reject_ratio" in text and "raw-2026-03-01-x" in text
    header, details, context = message["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert details["text"]["text"].count("•") == 2
    where = context["elements"][0]["text"]
    assert "<http://af/x?a=1&amp;b=2|Airflow task log>" in where  # mrkdwn link, escaped
    assert "Data Docs: `/repo/" in where
    json.dumps(message)  # plain JSON


def test_the_cli_and_the_dag_send_one_message_per_gate_and_day() -> None:
    from_cli = gate_notice(GATE_ALERT)
    from_dag = gate_notice({**GATE_ALERT, "task_id": "gate_raw", "source": "airflow"},
                           links=[("Airflow task log", "http://af")])
    assert from_cli.dedupe_key == from_dag.dedupe_key
    other_day = gate_notice({**GATE_ALERT, "logical_date": "2026-03-02"})
    other_layer = gate_notice({**GATE_ALERT, "layer": "marts"})
    assert len({from_cli.dedupe_key, other_day.dedupe_key, other_layer.dedupe_key}) == 3


def test_task_message_names_attempts_dbt_failures_and_the_error() -> None:
    failures = [{"name": "not_null_user_sessions_session_id", "kind": "test", "status": "fail",
                 "failures": 3, "message": "Got 3 results, configured to fail if != 0"}]
    notice = task_notice(TASK_ALERT, retries=2, dbt_failures=failures,
                         links=[("task attempts", "ops.pipeline_execution_logs")])
    assert notice.dedupe_key == "task_failed|ecommerce_analytics_pipeline.extract|2026-03-01"
    assert notice.title == ("Task extract of ecommerce_analytics_pipeline FAILED for "
                            "2026-03-01 after 3 attempts (retries exhausted)")
    assert notice.details[0] == ("dbt test not_null_user_sessions_session_id: fail, 3 failing "
                                 "rows: Got 3 results, configured to fail if != 0")
    assert notice.details[-1].startswith("error: UserError: Topic no-such-topic")
    long_error = task_notice({**TASK_ALERT, "error": "x" * 10_000}, retries=2)
    assert len(long_error.details[-1]) < 700


def test_attempts_say_whether_retries_were_exhausted() -> None:
    assert attempts_text(3, 2) == "after 3 attempts (retries exhausted)"
    assert attempts_text(1, 0) == "after 1 attempt (retries exhausted)"
    assert attempts_text(1, 2) == "on attempt 1 of 3 (not retried)"
    assert dbt_failure_line({"kind": "model", "name": "m", "status": "error",
                             "failures": None, "message": ""}) == "dbt model m: error"


def test_deadline_message_from_airflows_dag_run_json() -> None:
    dag_run = {"dag_id": "ecommerce_analytics_pipeline", "dag_run_id": "scheduled__2026-03-01",
               "logical_date": "2026-03-01T02:00:00Z", "queued_at": "2026-03-02T02:00:05Z",
               "start_date": "2026-03-02T02:00:06Z", "state": "running"}
    notice = deadline_notice(dag_run, {"deadline_time": "2026-03-02T04:00:05Z"},
                             "http://localhost:18080/", 120)
    assert notice.dedupe_key == "deadline_missed|ecommerce_analytics_pipeline|2026-03-01"
    assert "NOT FINISHED by its deadline for 2026-03-01" in notice.title
    assert "120 min" in notice.title
    assert dict(notice.links)["Airflow run"] == (
        "http://localhost:18080/dags/ecommerce_analytics_pipeline/runs/scheduled__2026-03-01")
    assert "deadline 2026-03-02T04:00:05Z" in notice.details[0]


def test_the_dags_deadline_calls_deadline_missed_unless_it_is_zero() -> None:
    alert = deadline_alert(120)
    assert alert.interval.total_seconds() == 7200
    assert alert.callback.path == "ecom_pipeline.notifications.deadline_missed"
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert deadline_alert(0) is None  # `ecom pipeline run` (airflow dags test)


def test_failed_dbt_nodes_are_read_from_run_results() -> None:
    results = {"results": [
        {"unique_id": "test.ecommerce.unique_orders_id.abc", "status": "fail", "failures": 2,
         "message": "Got 2 results,\n configured to fail if != 0"},
        {"unique_id": "model.ecommerce.orders", "status": "success", "failures": None},
        {"unique_id": "model.ecommerce.sessions", "status": "error", "failures": None,
         "message": "Database Error"},
    ]}
    assert failed_nodes(results) == [
        {"name": "unique_orders_id", "kind": "test", "status": "fail", "failures": 2,
         "message": "Got 2 results, configured to fail if != 0"},
        {"name": "sessions", "kind": "model", "status": "error", "failures": None,
         "message": "Database Error"},
    ]


def test_long_details_stay_within_slacks_limits() -> None:
    notice = Notice("task_failed", "t", None, "x" * 400, tuple("y" * 500 for _ in range(40)))
    message = slack_message(notice)
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    assert len(message["blocks"][1]["text"]["text"]) <= 3000
    assert "... and 20 more" in message["text"]
    assert notice.dedupe_key == "task_failed|t|-"


def test_a_webhook_url_that_is_not_http_fails_without_showing_it() -> None:
    for url in ("file:///etc/s3cr3t", "hooks.example.org/T0/s3cr3t", "https://"):
        with pytest.raises(UserError, match="not an http") as raised:
            post_json(url, {"text": "x"})
        assert "s3cr3t" not in str(raised.value)


def test_no_webhook_configured_sends_nothing() -> None:
    posted: list[Any] = []
    delivery = notify(Settings(), gate_notice(GATE_ALERT),
                      post=lambda url, body: posted.append(body))
    assert delivery == Delivery("off") and not posted
    assert "ECOM_ALERT_WEBHOOK_URL" in delivery.describe()


# ---- stream metrics --------------------------------------------------------------------------
def _event(ts: datetime) -> ValidEvent:
    return ValidEvent("e", "u", "s", "page_view", ts, None, None, None, None, "/", "ua", "ip",
                      "{}")


def _scrape(metrics: StreamMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def _value(text: str, sample: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith(sample + " "))
    return float(line.rsplit(" ", 1)[1])


class FakeKafka:
    def __init__(self, ends: dict[int, int]) -> None:
        self.ends = ends

    def partitions(self, topic: str) -> list[int]:
        return sorted(self.ends)

    def log_ends(self, topic: str, partitions: list[int]) -> dict[int, int]:
        return dict(self.ends)

    def log_starts(self, topic: str, partitions: list[int]) -> dict[int, int]:
        return dict.fromkeys(partitions, 0)

    def close(self) -> None:
        pass


def test_stream_metrics_count_what_landed_and_age_the_newest_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC).timestamp()
    metrics = StreamMetrics(Settings(), positions={"0": 5}, clock=lambda: now)
    monkeypatch.setattr(metrics._scrape, "_broker_answers", lambda: True)
    monkeypatch.setattr("ingestion.metrics.settings_client",
                        lambda settings: FakeKafka({0: 10, 1: 7}))
    result = BatchResult("q", 0, rows_read=10, valid=7, rejected=3, duplicates=1,
                         reasons={"invalid_json": 2, "duplicate_event_id": 1},
                         newest_event_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    metrics.landed(result)
    text = _scrape(metrics)
    assert _value(text, "ecom_ingest_rows_read_total") == 10
    assert _value(text, "ecom_ingest_rows_landed_total") == 7
    assert _value(text, 'ecom_ingest_rows_rejected_total{reason="invalid_json"}') == 2
    assert _value(text, 'ecom_ingest_rows_rejected_total{reason="duplicate_event_id"}') == 1
    assert _value(text, 'ecom_ingest_rows_rejected_total{reason="oversize"}') == 0
    assert _value(text, 'ecom_ingest_batches_total{query="events"}') == 1
    assert _value(text, "ecom_ingest_newest_event_age_seconds") == 30
    assert _value(text, "ecom_ingest_last_batch_success_timestamp_seconds") == now
    # partition 0 read up to 5 of 10; partition 1 not yet: from its log start
    assert _value(text, 'ecom_ingest_consumer_lag_records{partition="0",'
                  'topic="ecommerce-events"}') == 5
    assert _value(text, 'ecom_ingest_consumer_lag_records{partition="1",'
                  'topic="ecommerce-events"}') == 7
    assert _value(text, "ecom_ingest_kafka_up") == 1
    assert "\necom_ingest_watermark_delay_seconds " not in text  # no watermark yet


def test_progress_events_move_positions_durations_and_the_watermark() -> None:
    metrics = StreamMetrics(Settings(kafka_bootstrap_servers="127.0.0.1:9"),
                            clock=lambda: 1_000_000.0)
    source = SimpleNamespace(endOffset='{"0": 10, "1": 7}')
    metrics.progress(SimpleNamespace(name="events", batchDuration=1500, sources=[source],
                                     numInputRows=17, eventTime={}))
    assert metrics.positions == {0: 10, 1: 7}
    metrics.progress(SimpleNamespace(name="windows", batchDuration=200, sources=[],
                                     numInputRows=17,
                                     eventTime={"watermark": "1970-01-12T13:46:40.000Z"}))
    metrics.progress(SimpleNamespace(name="windows", batchDuration=100, sources=[],
                                     numInputRows=0,
                                     eventTime={"watermark": "1970-01-01T00:00:00.000Z"}))
    text = _scrape(metrics)
    assert _value(text, 'ecom_ingest_batch_duration_seconds_count{query="events"}') == 1
    assert _value(text, 'ecom_ingest_batch_duration_seconds_sum{query="events"}') == 1.5
    assert _value(text, 'ecom_ingest_batches_total{query="windows"}') == 1
    assert _value(text, "ecom_ingest_watermark_timestamp_seconds") == 1_000_000.0
    assert _value(text, "ecom_ingest_watermark_delay_seconds") == 0
    assert _value(text, "ecom_ingest_kafka_up") == 0  # nothing answers at port 9
    assert "\necom_ingest_consumer_lag_records{" not in text
    assert parse_spark_time("not a time") is None


# ---- warehouse exporter ----------------------------------------------------------------------
def _families(readings: Readings, now: float = 0.0) -> dict[str, list[Any]]:
    return {f.name: f.samples for f in warehouse_families(readings, Settings(), now)}


def test_exporter_families_from_query_rows() -> None:
    now = datetime(2026, 3, 2, 3, 0, 10, tzinfo=UTC).timestamp()
    families = _families(sample_readings(), now)
    gate = families["ecom_quality_gate_success"][0]
    assert gate.labels == {"layer": "raw", "logical_date": "2026-03-01"} and gate.value == 0
    assert families["ecom_quality_gate_failed_expectations"][0].value == 2
    assert families["ecom_source_freshness_seconds"][0].value == 10
    assert families["ecom_reject_ratio"][0].value == 0.01
    states = {s.labels["state"]: s.value for s in families["ecom_pipeline_last_run_state"]}
    assert states == {"success": 1, "failed": 0, "running": 0}
    assert families["ecom_pipeline_last_success_logical_date_timestamp_seconds"][0].value == \
        datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    assert families["ecom_mart_rows"][0].labels == {"mart": "daily_aggregations"}
    assert families["ecom_pg_stat_statements_available"][0].value == 1
    assert families["ecom_config_reject_ratio_threshold"][0].value == 0.05
    assert {s.labels["query"] for s in families["ecom_exporter_query_ok"]} >= {"gates"}


def test_exporter_with_postgresql_down_says_so_and_nothing_else() -> None:
    families = _families(Readings(pg_up=False))
    assert families["ecom_pg_up"][0].value == 0
    assert families["ecom_kafka_up"][0].value == 0
    assert families["ecom_quality_gate_success"] == []
    assert families["ecom_exporter_query_ok"] == []
    assert families["ecom_pg_stat_statements_available"][0].value == 0


def test_a_reject_ratio_needs_records_and_failed_queries_are_flagged() -> None:
    readings = sample_readings()
    readings.rows["reject_ratio"] = [("1h", 0, 0)]
    readings.failed["statements"] = "relation ops.top_statements does not exist"
    families = _families(readings)
    assert families["ecom_reject_ratio"] == []
    assert families["ecom_ingested_records"][0].value == 0
    ok = {s.labels["query"]: s.value for s in families["ecom_exporter_query_ok"]}
    assert ok["statements"] == 0 and ok["gates"] == 1
    assert families["ecom_pg_stat_statements_available"][0].value == 0


def test_pipeline_state_of_the_last_run() -> None:
    assert pipeline_state(failed=1, running=0, reported=False) == "failed"
    assert pipeline_state(failed=0, running=0, reported=True) == "success"
    assert pipeline_state(failed=0, running=2, reported=False) == "running"
    assert pipeline_state(failed=0, running=0, reported=False) == "running"


def test_a_gate_day_label_is_the_logical_date() -> None:
    readings = sample_readings()
    readings.rows["gates"] = [("marts", date(2026, 2, 28), 0, 12,
                               datetime(2026, 3, 1, tzinfo=UTC))]
    sample = _families(readings)["ecom_quality_gate_success"][0]
    assert (sample.labels["logical_date"], sample.value) == ("2026-02-28", 1)


def test_a_metrics_port_already_taken_is_one_sentence() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"127.0.0.1:{port}.*set ECOM_STREAM_METRICS_PORT"):
            serve_registry(CollectorRegistry(), "127.0.0.1", port,
                           setting="ECOM_STREAM_METRICS_PORT")
    server = serve_registry(CollectorRegistry(), "127.0.0.1", 0, setting="X")
    try:
        assert server.port > 0 and server.url.endswith("/metrics")
    finally:
        server.close()
