"""The run's logical day: what every task of a run works on, so reruns are idempotent.

The DAG's timetable is a cron *data interval* (`0 2 * * *`, UTC): the run that starts at
02:00 on D+1 covers the interval starting at D 02:00 and has logical date D 02:00; its
logical day is D (the 2 h after midnight let late events arrive). `airflow dags test
<dag> D` has logical date D 00:00, logical day D. Both: the UTC calendar day of the
logical date. A run without a logical date (Airflow 3 allows it) uses its data interval
start, then its run_after.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any


def logical_day(context: Mapping[str, Any]) -> date:
    """The UTC calendar day a task instance works on."""
    for key in ("logical_date", "data_interval_start"):
        value = context.get(key)
        if value is not None:
            return _utc(value).date()
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_after is None:
        raise ValueError("the task context carries no logical date, data interval or run_after")
    return _utc(run_after).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC calendar day."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
