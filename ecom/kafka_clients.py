"""Kafka producers for every stage: one place that turns `Settings` into a client.

Each producer of the project (the simulator, ingestion's processed-events publisher, the
quality gates' alerts, the DAG's published aggregations) is built here, for either client
the project supports (`ECOM_KAFKA_CLIENT`: confluent-kafka, the default, or kafka-python,
which the design names): the connection settings live in one function per client, and the
caller adds only what is its own (batching, compression, idempotence, callbacks).
`produce_json` sends a few JSON messages and waits until each is acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException, Producer
from kafka import KafkaProducer
from kafka.errors import KafkaError

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_security import KafkaSecurity

KAFKA_CLIENTS = ("confluent", "kafka-python")


def confluent_config(settings: Settings, client_id: str, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration: the cluster's address and security, acks=all, then `extra`."""
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, "client.id": client_id,
            "acks": "all", **KafkaSecurity.of(settings).confluent(), **extra}


def kafka_python_config(settings: Settings, client_id: str, **extra: Any) -> dict[str, Any]:
    """kafka-python keyword arguments: the cluster's address and security, then `extra`."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
            "client_id": client_id, **KafkaSecurity.of(settings).kafka_python(), **extra}


def confluent_producer(settings: Settings, client_id: str, **extra: Any) -> Producer:
    return Producer(confluent_config(settings, client_id, **extra))


def kafka_python_producer(settings: Settings, client_id: str, **extra: Any) -> KafkaProducer:
    """A kafka-python producer (acks=all); UserError when no broker answers."""
    try:
        return KafkaProducer(**kafka_python_config(settings, client_id, acks="all", **extra))
    except (KafkaError, OSError) as exc:
        raise UserError(
            f"kafka-python could not connect to {settings.kafka_bootstrap_servers} ({exc}). "
            "Start the broker with `ecom stack up` or fix ECOM_KAFKA_BOOTSTRAP_SERVERS.") from exc


def to_json(value: Any) -> bytes:
    """Compact JSON; dates, decimals and UUIDs as strings."""
    return json.dumps(value, default=str, separators=(",", ":"), sort_keys=True).encode()


def produce_json(settings: Settings, topic: str, messages: Iterable[tuple[str, Any]], *,
                 client_id: str = "ecom", timeout_s: float = 30.0) -> int:
    """Send (key, value) pairs as JSON and wait until the broker acknowledged each one;
    return how many it acknowledged.

    Raises UserError when any message is not acknowledged within the timeout, so a caller
    never reports a publish that did not happen.
    """
    encoded = [(key.encode(), to_json(value)) for key, value in messages]
    if not encoded:
        return 0
    if settings.kafka_client == "kafka-python":
        delivered, failures = _send_kafka_python(settings, topic, encoded, client_id, timeout_s)
    else:
        delivered, failures = _send_confluent(settings, topic, encoded, client_id, timeout_s)
    if failures or delivered != len(encoded):
        first = failures[0] if failures else "no acknowledgement in time"
        raise UserError(
            f"Kafka at {settings.kafka_bootstrap_servers} acknowledged {delivered} of "
            f"{len(encoded)} message(s) to {topic} ({first}). Is the broker up "
            "(`ecom stack status`)?")
    return delivered


def _send_confluent(settings: Settings, topic: str, encoded: list[tuple[bytes, bytes]],
                    client_id: str, timeout_s: float) -> tuple[int, list[str]]:
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1
        else:
            failures.append(str(err))

    producer = confluent_producer(settings, client_id, **{
        "linger.ms": 5, "message.timeout.ms": int(timeout_s * 1000)})
    try:
        for key, value in encoded:
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            producer.poll(0)
        producer.flush(timeout_s + 1)
    except (KafkaException, BufferError) as exc:
        failures.append(str(exc))
    return delivered, failures


def _send_kafka_python(settings: Settings, topic: str, encoded: list[tuple[bytes, bytes]],
                       client_id: str, timeout_s: float) -> tuple[int, list[str]]:
    producer = kafka_python_producer(settings, client_id, linger_ms=5,
                                     request_timeout_ms=int(timeout_s * 1000))
    failures: list[str] = []
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in encoded]
        producer.flush(timeout=timeout_s)
        for future in futures:
            if not (future.is_done and future.succeeded()):
                failures.append(str(future.exception or "not acknowledged in time"))
    except KafkaError as exc:
        failures.append(str(exc))
        futures = []
    finally:
        producer.close(timeout=5)
    return len(futures) - len(failures), failures
