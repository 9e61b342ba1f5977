"""A gate run's outcome: one `Outcome` per expectation, readable lines, the alert payload.

Pure code over plain values (GE result objects are flattened by `outcomes_from_checkpoint`),
so the formatting and the alert contract are unit-tested without GE or a database.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    """Values as JSON-friendly data (datetimes as ISO strings, Decimals as floats)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict in one run."""

    suite: str
    expectation_type: str
    success: bool
    column: str | None = None
    description: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    observed_value: Any = None
    unexpected_count: int | None = None
    element_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.expectation_type}({self.column})" if self.column else self.expectation_type

    def detail(self) -> str:
        """What was found, in a few words."""
        if self.error:
            return f"error: {self.error}"
        if self.expectation_type == "unexpected_rows_expectation":
            rows = self.observed_value
            if isinstance(rows, int):
                return f"{rows:,} unexpected row{'' if rows == 1 else 's'}"
            return f"observed {rows}"
        if self.unexpected_count is not None and self.element_count is not None:
            pct = f" ({self.unexpected_percent:.3g}%)" if self.unexpected_percent else ""
            examples = _distinct(self.sample)
            sample = f", e.g. {', '.join(map(repr, examples))}" if examples else ""
            return (f"{self.unexpected_count:,} of {self.element_count:,} rows "
                    f"unexpected{pct}{sample}")
        return f"observed {jsonable(self.observed_value)}{_bounds(self.kwargs)}"

    def line(self) -> str:
        """One readable line naming the suite, the expectation and what was found."""
        status = "ok  " if self.success else "FAIL"
        why = f" - {self.description}" if self.description else ""
        return f"{status} {self.suite}: {self.name}: {self.detail()}{why}"

    def alert_entry(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "expectation": self.expectation_type,
            "column": self.column,
            "description": self.description,
            "unexpected_count": self.unexpected_count,
            "element_count": self.element_count,
            "observed_value": jsonable(self.observed_value),
            "detail": self.detail(),
        }


def _distinct(values: list[Any]) -> list[Any]:
    """Non-null values in first-seen order, each once."""
    seen: list[Any] = []
    for value in values:
        if value is not None and value not in seen:
            seen.append(value)
    return seen


def _bounds(kwargs: dict[str, Any]) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        return ""
    if high is None:
        return f", expected >= {jsonable(low)}"
    if low is None:
        return f", expected <= {jsonable(high)}"
    return f", expected in [{jsonable(low)}, {jsonable(high)}]"


@dataclass(frozen=True)
class GateResult:
    """The verdict of one layer's checkpoint for one logical date."""

    layer: str
    logical_date: date
    run_id: str
    started_at: datetime
    finished_at: datetime
    outcomes: tuple[Outcome, ...]
    data_docs: str | None = None
    notification: str | None = None  # what became of the webhook message of a failure

    @property
    def success(self) -> bool:
        return bool(self.outcomes) and all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def headline(self) -> str:
        verdict = "passed" if self.success else "FAILED"
        return (f"{self.layer} gate {verdict} for {self.logical_date}: "
                f"{len(self.outcomes) - len(self.failed)}/{len(self.outcomes)} expectations met "
                f"in {self.seconds:.1f} s (run {self.run_id})")

    def summary(self) -> dict[str, Any]:
        """Plain data (e.g. for an Airflow XCom)."""
        return {
            "layer": self.layer,
            "logical_date": self.logical_date.isoformat(),
            "run_id": self.run_id,
            "success": self.success,
            "expectations": len(self.outcomes),
            "failed": [o.name for o in self.failed],
            "seconds": round(self.seconds, 3),
        }


def alert_payload(result: GateResult) -> dict[str, Any]:
    """The JSON published to the alerts topic when a gate fails."""
    return {
        "kind": "data_quality_alert",
        "layer": result.layer,
        "logical_date": result.logical_date.isoformat(),
        "run_id": result.run_id,
        "run_started_at": result.started_at.isoformat(),
        "expectations": len(result.outcomes),
        "failed_count": len(result.failed),
        "failed": [o.alert_entry() for o in result.failed],
        "data_docs": result.data_docs,
    }


def outcome_row(outcome: Outcome) -> dict[str, Any]:
    """`ops.data_quality_logs` columns of one outcome (without the run's columns)."""
    observed = outcome.observed_value
    if observed is None and outcome.error is None and outcome.unexpected_count is not None:
        observed = {"unexpected_percent": outcome.unexpected_percent,
                    "partial_unexpected_list": outcome.sample}
    if outcome.error is not None:
        observed = {"error": outcome.error}
    return {
        "suite_name": outcome.suite,
        "expectation_type": outcome.expectation_type,
        "column_name": outcome.column,
        "expectation_kwargs": json.dumps(jsonable(
            {**outcome.kwargs, "description": outcome.description}
        )),
        "success": outcome.success,
        "observed_value": json.dumps(jsonable(observed)),
        "unexpected_count": outcome.unexpected_count,
        "element_count": outcome.element_count,
    }


def asdict_outcome(outcome: Outcome) -> dict[str, Any]:
    return jsonable(asdict(outcome))
