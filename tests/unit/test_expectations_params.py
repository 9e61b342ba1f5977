"""Run-time values of a gate: freshness cut-off, reject limit, volume bounds, --date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ecom.errors import UserError
from expectations.cli import parse_logical_date
from expectations.params import (
    FRESH_AFTER,
    MAX_REJECT_RATIO,
    VOLUME_MAX,
    VOLUME_MIN,
    run_values,
    volume_bounds,
)

NOW = datetime(2026, 1, 11, 0, 30, tzinfo=UTC)


def test_without_history_only_an_empty_day_fails() -> None:
    assert volume_bounds([]) == (1, None)
    assert volume_bounds([900, 1000]) == (1, None)  # fewer than 3 previous days


def test_with_history_bounds_are_an_order_of_magnitude_around_the_median() -> None:
    assert volume_bounds([1000, 900, 1100, 5000]) == (105, 10_500)
    assert volume_bounds([0, 0, 0, 10, 10, 10]) == (1, 100)  # empty days ignored


def test_run_values_feed_the_suite_parameters() -> None:
    values = run_values(date(2026, 1, 10), NOW, freshness_hours=36, max_reject_ratio=0.05,
                        previous_volumes=[])
    params = values.expectation_parameters
    assert params[FRESH_AFTER] == NOW - timedelta(hours=36)
    assert params[MAX_REJECT_RATIO] == 0.05
    assert (params[VOLUME_MIN], params[VOLUME_MAX]) == (1, None)


def test_run_values_need_an_aware_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        run_values(date(2026, 1, 10), datetime(2026, 1, 11), freshness_hours=1,
                   max_reject_ratio=0.1, previous_volumes=[])


def test_logical_date_defaults_to_yesterday_and_rejects_garbage() -> None:
    assert parse_logical_date(None, today=date(2026, 3, 1)) == date(2026, 2, 28)
    assert parse_logical_date("2026-01-31") == date(2026, 1, 31)
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        parse_logical_date("31/01/2026")
