"""Publish a failed gate's alert to the alerts topic."""

from __future__ import annotations

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_clients import produce_json
from expectations.results import GateResult, alert_payload


def publish_alert(settings: Settings, result: GateResult, timeout_s: float = 15.0) -> None:
    """Send the alert (key = layer) and wait for the broker's acknowledgement."""
    try:
        produce_json(settings, settings.topic_alerts, [(result.layer, alert_payload(result))],
                     client_id="ecom-quality", timeout_s=timeout_s)
    except UserError as exc:
        raise UserError(
            f"The {result.layer} gate failed, and its alert could not be published ({exc}) "
            f"The results are in ops.data_quality_logs (run {result.run_id})."
        ) from exc
