"""One progress line per micro-batch (pure formatting, so it is unit-tested)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ingestion.sink import BatchResult

#: what Spark reports for "no offsets" (a replayed batch's progress has no latestOffset)
_NO_OFFSETS = {"", "null", "none", "{}"}


def parse_offsets(text: str | Mapping[str, int] | None) -> dict[str, int]:
    """Offsets as Spark reports them (a JSON string or a dict) -> {partition: offset}.

    None, an empty or blank string and JSON `null` mean no offsets: {}.
    """
    if text is None or (isinstance(text, str) and text.strip().lower() in _NO_OFFSETS):
        return {}
    data = json.loads(text) if isinstance(text, str) else dict(text)
    if not data:
        return {}
    if data and all(isinstance(v, dict) for v in data.values()):  # native: {topic: {p: o}}
        data = {p: o for inner in data.values() for p, o in inner.items()}
    return {str(k): int(v) for k, v in data.items()}


def progress_offsets(text: str | Mapping[str, int] | None) -> dict[str, int]:
    """`parse_offsets` for a progress line: anything unreadable is {} (the line still prints)."""
    try:
        return parse_offsets(text)
    except (ValueError, TypeError, AttributeError):
        return {}


def lag(latest: Mapping[str, int], end: Mapping[str, int]) -> dict[str, int]:
    """Per partition: records in the log beyond what this batch read up to."""
    return {p: max(0, latest[p] - end.get(p, 0)) for p in sorted(latest, key=int)}


def batch_line(result: BatchResult, seconds: float, partition_lag: Mapping[str, int]) -> str:
    """`batch 12: 100,000 rows, 98,950 valid, 1,050 rejected (95 duplicates) ...`."""
    rate = result.rows_read / seconds if seconds > 0 else 0.0
    lag_text = " ".join(f"p{p}={n:,}" for p, n in partition_lag.items()) or "n/a"
    parts = [
        f"batch {result.batch_id}: {result.rows_read:,} rows",
        f"{result.valid:,} valid",
        f"{result.rejected:,} rejected ({result.duplicates:,} duplicates)",
    ]
    if result.settled:
        parts.append(f"{result.settled:,} already landed")
    if result.skipped_batch:
        parts.append("batch already committed: skipped")
    return (", ".join(parts) + f" in {seconds:.2f} s = {rate:,.0f} rows/s; lag {lag_text}")
