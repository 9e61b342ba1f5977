"""How the dashboards write numbers, shares and ages (pure: the tests format the SQL figures
they compare with the page through the same functions)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(value: Any) -> str:
    """1234567 -> '1,234,567'."""
    return "-" if _missing(value) else f"{round(float(value)):,}"


def money(value: Any) -> str:
    """1234.5 -> '1,234.50' (the shop's single currency)."""
    return "-" if _missing(value) else f"{float(value):,.2f}"


def share(value: Any, digits: int = 2) -> str:
    """0.12345 -> '12.35%'."""
    return "-" if _missing(value) else f"{100 * float(value):.{digits}f}%"


def age(delta: timedelta | None) -> str:
    """A duration as a person reads it: '42 s', '7 min', '3 h 5 min', '2 d 4 h'."""
    if delta is None:
        return "-"
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def hours(value: Any) -> str:
    """An age in hours (float) as `age` writes it."""
    return "-" if _missing(value) else age(timedelta(hours=float(value)))
