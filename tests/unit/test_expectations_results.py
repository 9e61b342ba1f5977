"""Readable failure lines, the alert payload and the log rows of a gate run."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

from expectations.results import GateResult, Outcome, alert_payload, outcome_row

STARTED = datetime(2026, 1, 11, 0, 30, tzinfo=UTC)


def _result(*outcomes: Outcome) -> GateResult:
    return GateResult("raw", date(2026, 1, 10), "raw-2026-01-10-x", STARTED,
                      datetime(2026, 1, 11, 0, 30, 4, tzinfo=UTC), outcomes)


IN_SET = Outcome(
    suite="raw_events", expectation_type="expect_column_values_to_be_in_set", success=False,
    column="event_type", description="event_type is one of the contract's event types",
    kwargs={"column": "event_type", "value_set": ["page_view"]}, unexpected_count=7,
    element_count=1000, unexpected_percent=0.7, sample=["refund", "refund", None, "x"],
)
NOT_NULL = Outcome(
    suite="raw_events", expectation_type="expect_column_values_to_not_be_null",
    success=False, column="ip_address", unexpected_count=42, element_count=1000,
    unexpected_percent=4.2, sample=[None, None],
)
RATIO = Outcome(
    suite="raw_feed", expectation_type="expect_column_max_to_be_between", success=False,
    column="reject_ratio", kwargs={"column": "reject_ratio", "min_value": 0,
                                   "max_value": 0.05},
    observed_value=Decimal("0.125"),
)
ROWS = Outcome(suite="daily_aggregations", expectation_type="unexpected_rows_expectation",
               success=False, observed_value=1, unexpected_count=1,
               description="avg_order_value = total_revenue / orders")
PASSED = Outcome(suite="raw_events", expectation_type="expect_table_row_count_to_be_between",
                 success=True, observed_value=1000, kwargs={"min_value": 1, "max_value": None})


def test_each_failure_is_one_line_naming_suite_expectation_and_finding() -> None:
    assert IN_SET.line() == (
        "FAIL raw_events: expect_column_values_to_be_in_set(event_type): 7 of 1,000 rows "
        "unexpected (0.7%), e.g. 'refund', 'x' - event_type is one of the contract's event "
        "types"
    )
    assert NOT_NULL.detail() == "42 of 1,000 rows unexpected (4.2%)"
    assert RATIO.detail() == "observed 0.125, expected in [0, 0.05]"
    assert ROWS.detail() == "1 unexpected row"
    assert PASSED.line().startswith("ok   raw_events: expect_table_row_count_to_be_between")
    assert "\n" not in IN_SET.line()


def test_gate_verdict_and_summary() -> None:
    failed = _result(PASSED, IN_SET, RATIO)
    assert not failed.success
    assert [o.name for o in failed.failed] == [
        "expect_column_values_to_be_in_set(event_type)",
        "expect_column_max_to_be_between(reject_ratio)",
    ]
    assert failed.headline().startswith("raw gate FAILED for 2026-01-10: 1/3 expectations met")
    assert failed.summary()["failed"] == [o.name for o in failed.failed]
    assert _result(PASSED).success
    assert not _result().success  # a run that checked nothing proves nothing


def test_alert_payload_carries_layer_date_run_and_failed_counts() -> None:
    payload = alert_payload(_result(PASSED, IN_SET, ROWS))
    json.dumps(payload)  # serialisable as is
    assert payload["kind"] == "data_quality_alert"
    assert (payload["layer"], payload["logical_date"], payload["run_id"]) == (
        "raw", "2026-01-10", "raw-2026-01-10-x")
    assert payload["failed_count"] == 2 and payload["expectations"] == 3
    first = payload["failed"][0]
    assert (first["suite"], first["expectation"], first["column"]) == (
        "raw_events", "expect_column_values_to_be_in_set", "event_type")
    assert (first["unexpected_count"], first["element_count"]) == (7, 1000)
    assert payload["failed"][1]["unexpected_count"] == 1


def test_log_row_keeps_observed_value_and_counts_as_json() -> None:
    row = outcome_row(RATIO)
    assert row["expectation_type"] == "expect_column_max_to_be_between"
    assert row["column_name"] == "reject_ratio"
    assert json.loads(row["observed_value"]) == 0.125
    assert json.loads(row["expectation_kwargs"])["max_value"] == 0.05
    row = outcome_row(IN_SET)
    assert json.loads(row["observed_value"])["partial_unexpected_list"][0] == "refund"
    assert (row["unexpected_count"], row["element_count"], row["success"]) == (7, 1000, False)
    errored = Outcome(suite="s", expectation_type="t", success=False, error="relation missing")
    assert json.loads(outcome_row(errored)["observed_value"]) == {"error": "relation missing"}
    assert errored.line().endswith("error: relation missing")
