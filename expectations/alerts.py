"""Publish a failed gate's alert to the alerts topic (confluent-kafka producer)."""

from __future__ import annotations

from confluent_kafka import KafkaException, Producer

from ecom.config import Settings
from ecom.errors import UserError
from expectations.results import GateResult, alert_json


def publish_alert(settings: Settings, result: GateResult, timeout_s: float = 15.0) -> None:
    """Send the alert (key = layer) and wait for the broker's acknowledgement."""
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer({
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": "ecom-quality",
        "acks": "all",
        "message.timeout.ms": int(timeout_s * 1000),
    })
    try:
        producer.produce(settings.topic_alerts, key=result.layer.encode(),
                         value=alert_json(result), on_delivery=delivered)
        remaining = producer.flush(timeout_s + 1)
    except (KafkaException, BufferError) as exc:
        errors.append(str(exc))
        remaining = 0
    if remaining or errors:
        reason = errors[0] if errors else "no acknowledgement in time"
        raise UserError(
            f"The {result.layer} gate failed, and its alert could not be published to "
            f"{settings.topic_alerts} at {settings.kafka_bootstrap_servers} ({reason}). "
            f"The results are in ops.data_quality_logs (run {result.run_id}); "
            "check the broker (`ecom stack status`)."
        )
