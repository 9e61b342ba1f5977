"""Run-time values of a gate run: the suites' parameters.

Suites refer to these by name (`{"$PARAMETER": FRESH_AFTER}`); the gate computes them here
from the logical date, the clock and `Settings`, so stored suites never embed a date.
Pure functions: unit-tested without a database.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

FRESH_AFTER = "fresh_after"
MAX_REJECT_RATIO = "max_reject_ratio"
VOLUME_MIN = "volume_min"
VOLUME_MAX = "volume_max"

#: the volume of a day must lie within these factors of the trailing median daily volume
VOLUME_LOW_FACTOR = 0.1
VOLUME_HIGH_FACTOR = 10.0
#: previous validated days needed before relative volume bounds apply
VOLUME_MIN_HISTORY = 3


def param(name: str) -> dict[str, str]:
    """A suite-parameter reference, resolved at run time from `expectation_parameters`."""
    return {"$PARAMETER": name}


def volume_bounds(previous_volumes: list[int]) -> tuple[int, int | None]:
    """Accepted row counts for a day, from the volumes of previously validated days.

    Without enough history only an empty day fails; with it, a day must be within
    [VOLUME_LOW_FACTOR, VOLUME_HIGH_FACTOR] x the median: an order of magnitude off means a
    partial load or a replay storm, ordinary weekday swings pass.
    """
    history = [v for v in previous_volumes if v > 0]
    if len(history) < VOLUME_MIN_HISTORY:
        return 1, None
    median = statistics.median(history)
    return max(1, math.floor(median * VOLUME_LOW_FACTOR)), math.ceil(median * VOLUME_HIGH_FACTOR)


@dataclass(frozen=True)
class RunValues:
    """Everything a gate run feeds GE besides the suites themselves."""

    logical_date: date
    started_at: datetime
    fresh_after: datetime
    max_reject_ratio: float
    volume_min: int
    volume_max: int | None

    @property
    def expectation_parameters(self) -> dict[str, object]:
        return {
            FRESH_AFTER: self.fresh_after,
            MAX_REJECT_RATIO: self.max_reject_ratio,
            VOLUME_MIN: self.volume_min,
            VOLUME_MAX: self.volume_max,
        }


def run_values(
    logical_date: date,
    started_at: datetime,
    *,
    freshness_hours: float,
    max_reject_ratio: float,
    previous_volumes: list[int],
) -> RunValues:
    """The run's values: data must have landed within `freshness_hours` of the run start."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    low, high = volume_bounds(previous_volumes)
    return RunValues(
        logical_date=logical_date,
        started_at=started_at,
        fresh_after=started_at - timedelta(hours=freshness_hours),
        max_reject_ratio=max_reject_ratio,
        volume_min=low,
        volume_max=high,
    )
