"""The webhook message of a failed gate, built from its alert payload (`alert_payload`).

Built from the payload (plain data, the same JSON the alerts topic carries) so the CLI and
the DAG's failure callback, which only has the payload, send the same message. Its dedupe
subject is the layer: a gate failing for a day is one message, whether the CLI or the DAG
ran it first, and however often it is re-run that day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from ecom.config import Settings
from ecom.notifications import Delivery, Notice, notify
from expectations.results import GateResult, alert_payload


def gate_notice(alert: Mapping[str, Any], *,
                links: Sequence[tuple[str, str]] = ()) -> Notice:
    """`links`: more places to look (the DAG adds its Airflow log)."""
    failed = list(alert.get("failed") or [])
    layer = str(alert["layer"])
    day = date.fromisoformat(str(alert["logical_date"]))
    total = alert.get("expectations")
    of_total = f" of {total}" if total is not None else ""
    title = (f"{layer} quality gate FAILED for {day}: {len(failed)}{of_total} "
             f"expectation{'' if len(failed) == 1 else 's'} failed")
    details = []
    for entry in failed:
        name = entry.get("expectation") or "?"
        if entry.get("column"):
            name += f"({entry['column']})"
        details.append(f"{entry.get('suite')}: {name}: {entry.get('detail')}")
    where = [("results", f"ops.data_quality_logs where run_id = '{alert.get('run_id')}'")]
    if alert.get("data_docs"):
        where.append(("Data Docs", str(alert["data_docs"])))
    return Notice("quality_gate", layer, day, title, tuple(details), (*links, *where))


def notify_gate_failure(settings: Settings, result: GateResult) -> Delivery:
    return notify(settings, gate_notice(alert_payload(result)))
