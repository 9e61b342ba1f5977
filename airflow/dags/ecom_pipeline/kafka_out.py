"""Publish JSON messages to a Kafka topic and wait until the broker acknowledged each one."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException, Producer

from ecom.config import Settings
from ecom.errors import UserError


def to_json(value: Any) -> bytes:
    """Compact JSON; dates, decimals and UUIDs as strings."""
    return json.dumps(value, default=str, separators=(",", ":"), sort_keys=True).encode()


def produce_json(settings: Settings, topic: str, messages: Iterable[tuple[str, Any]],
                 timeout_s: float = 30.0) -> int:
    """Send (key, value) pairs as JSON with acks=all; return how many were acknowledged.

    Raises UserError when any message is not acknowledged within the timeout, so a caller
    never reports a publish that did not happen.
    """
    producer = Producer({
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": "ecom-airflow",
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": int(timeout_s * 1000),
    })
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1
        else:
            failures.append(str(err))

    sent = 0
    try:
        for key, value in messages:
            producer.produce(topic, key=key.encode(), value=to_json(value),
                             on_delivery=on_delivery)
            producer.poll(0)
            sent += 1
        pending = producer.flush(timeout_s)
    except (KafkaException, BufferError) as exc:
        raise UserError(f"Could not publish to Kafka topic {topic} at "
                        f"{settings.kafka_bootstrap_servers}: {exc}") from exc
    if failures or pending or delivered != sent:
        first = failures[0] if failures else f"{pending} message(s) still queued"
        raise UserError(
            f"Kafka at {settings.kafka_bootstrap_servers} acknowledged {delivered} of {sent} "
            f"message(s) to {topic} ({first}). Is the broker up (`ecom stack status`)?"
        )
    return delivered
