"""When shoppers come: the diurnal and weekday shape of traffic (pure functions)."""

from __future__ import annotations

import random
from bisect import bisect
from datetime import date
from itertools import accumulate

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

#: Relative traffic per UTC hour: quiet nights, a lunch bump and an evening peak.
HOURLY_WEIGHTS: tuple[float, ...] = (
    0.30, 0.20, 0.15, 0.12, 0.12, 0.18, 0.35, 0.60, 0.85, 1.00, 1.10, 1.20,
    1.35, 1.30, 1.15, 1.10, 1.15, 1.30, 1.55, 1.80, 1.90, 1.70, 1.20, 0.65,
)
#: Relative traffic per weekday, Monday first (averages to 1.0 over a week).
WEEKDAY_FACTORS: tuple[float, ...] = (0.96, 0.92, 0.94, 0.98, 1.04, 1.12, 1.04)

_HOUR_CUM = tuple(accumulate(HOURLY_WEIGHTS))


def day_target(events_per_day: int, day: date) -> int:
    """Valid events to generate on `day`: the mean scaled by the weekday factor."""
    return round(events_per_day * WEEKDAY_FACTORS[day.weekday()])


def hourly_targets(total: int) -> list[int]:
    """Split a day's total over its 24 hours by the diurnal shape; sums exactly to `total`."""
    weight_sum = _HOUR_CUM[-1]
    exact = [total * w / weight_sum for w in HOURLY_WEIGHTS]
    targets = [int(x) for x in exact]
    shortfall = total - sum(targets)
    by_remainder = sorted(range(24), key=lambda h: (exact[h] - targets[h], -h), reverse=True)
    for hour in by_remainder[:shortfall]:
        targets[hour] += 1
    return targets


def sample_hour(rng: random.Random) -> int:
    """An hour of the day drawn from the diurnal shape."""
    return bisect(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
