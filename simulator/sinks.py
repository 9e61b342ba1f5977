"""Where simulated messages go: Kafka (confluent-kafka or kafka-python), a JSONL file, or nowhere.

Every sink reports each message's fate to a `Tally`: `ack(rec)` once the destination
acknowledged it (Kafka: acks=all delivery report), `fail(rec, error)` otherwise. Kafka
deliveries are checked in bulk (delivery callbacks served by `poll`, or completed futures
drained in order), never by waiting on each message.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException
from kafka.errors import KafkaError as KafkaPythonError
from kafka.errors import KafkaTimeoutError

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import admin_client, topic_partitions
from ecom.kafka_clients import KAFKA_CLIENTS, confluent_producer, kafka_python_producer
from ecom.ports import port_answers
from simulator.manifest import Tally

_LIBRDKAFKA_LOG = logging.getLogger("simulator.librdkafka")
_LIBRDKAFKA_LOG.addHandler(logging.NullHandler())

#: Default compression per client (kafka-python would need the extra `lz4` package for lz4).
DEFAULT_COMPRESSION = {"confluent": "lz4", "kafka-python": "gzip"}
LINGER_MS = 20
BATCH_BYTES = 1 << 20
DELIVERY_TIMEOUT_MS = 120_000
#: How long "all brokers down" may last before a run gives up (brief reconnects are fine).
BROKERS_DOWN_GRACE_S = 5.0


class Sink(Protocol):
    """Destination of the message stream."""

    #: why the sink cannot go on (failed deliveries, broker unreachable), else None
    problem: str | None

    def describe(self) -> dict[str, Any]: ...
    def send(self, key: bytes, value: bytes, rec: tuple) -> None: ...
    def poll(self) -> None: ...
    def flush(self, timeout_s: float) -> None: ...
    def close(self) -> None: ...


class ConfluentSink:
    """librdkafka producer: idempotent, acks=all, lz4, 20 ms linger, murmur2 key partitioning."""

    def __init__(self, settings: Settings, topic: str, tally: Tally,
                 compression: str | None = None) -> None:
        self._topic = topic
        self._tally = tally
        self._compression = compression or DEFAULT_COMPRESSION["confluent"]
        self._bootstrap = settings.kafka_bootstrap_servers
        self._last_error: str | None = None
        self._problem: str | None = None
        self._down_since: float | None = None  # all brokers down since (monotonic s)
        self._producer = confluent_producer(settings, "ecom-simulator", **{
            "enable.idempotence": True,
            "compression.type": self._compression,
            "linger.ms": LINGER_MS,
            "batch.size": BATCH_BYTES,
            "queue.buffering.max.messages": 500_000,
            "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            # same key -> partition mapping as kafka-python and the Java client
            "partitioner": "murmur2_random",
            "error_cb": self._on_error,
            # librdkafka's own log lines go to logging (silent unless the app configures it);
            # what matters reaches the user through error_cb and the delivery reports
            "logger": _LIBRDKAFKA_LOG,
        })
        self._produce = self._producer.produce
        self._sent = 0

    def describe(self) -> dict[str, Any]:
        return {"kind": "kafka", "client": "confluent", "topic": self._topic,
                "bootstrap": self._bootstrap, "compression": self._compression}

    @property
    def problem(self) -> str | None:
        """See Sink.problem; all brokers down counts once it lasted BROKERS_DOWN_GRACE_S."""
        if self._problem is None and self._down_since is not None and \
                time.monotonic() - self._down_since > BROKERS_DOWN_GRACE_S:
            self._problem = f"Kafka client error: {self._last_error}"
        return self._problem

    def _on_error(self, err: KafkaError) -> None:
        self._last_error = err.str()
        if err.fatal():
            self._problem = self._problem or f"Kafka client error: {self._last_error}"
        elif err.code() == KafkaError._ALL_BROKERS_DOWN and self._down_since is None:
            self._down_since = time.monotonic()

    def _delivered(self, rec: tuple, err: KafkaError | None, _msg: object) -> None:
        if err is None:
            self._tally.ack(rec)
            self._down_since = None
        else:
            self._tally.fail(rec, err.str())
            self._problem = self._problem or f"delivery failed: {err.str()}"

    def send(self, key: bytes, value: bytes, rec: tuple) -> None:
        callback = partial(self._delivered, rec)
        while True:
            try:
                self._produce(self._topic, value, key, on_delivery=callback)
                break
            except BufferError:  # local queue full: serve deliveries until there is room
                self._producer.poll(0.05)
                if self.problem:
                    self._tally.fail(rec, self.problem)
                    return
            except KafkaException as exc:
                self._tally.fail(rec, exc)
                self._problem = self._problem or f"produce failed: {exc}"
                return
        self._sent += 1
        if not self._sent & 1023:
            self._producer.poll(0)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        if self._producer.flush(timeout_s):
            # still undelivered: drop them so their callbacks report failure
            self._producer.purge()
            self._producer.flush(5)
            if self.problem is None:
                self._problem = f"not delivered within {timeout_s:.0f} s" + (
                    f" (last client error: {self._last_error})" if self._last_error else "")

    def close(self) -> None:
        self._producer.flush(0)


class KafkaPythonSink:
    """kafka-python producer: idempotent, acks=all, gzip, 20 ms linger, murmur2 partitioning."""

    def __init__(self, settings: Settings, topic: str, tally: Tally,
                 compression: str | None = None) -> None:
        self._topic = topic
        self._tally = tally
        self._compression = compression or DEFAULT_COMPRESSION["kafka-python"]
        self._bootstrap = settings.kafka_bootstrap_servers
        self._producer = kafka_python_producer(
            settings, "ecom-simulator",
            enable_idempotence=True,
            compression_type=None if self._compression == "none" else self._compression,
            linger_ms=LINGER_MS,
            batch_size=BATCH_BYTES,
            delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
            metrics_enabled=False,
        )
        self._send = self._producer.send
        self._pending: deque[tuple[Any, tuple]] = deque()
        self._sent = 0
        self.problem: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": "kafka", "client": "kafka-python", "topic": self._topic,
                "bootstrap": self._bootstrap, "compression": self._compression}

    def send(self, key: bytes, value: bytes, rec: tuple) -> None:
        try:
            self._pending.append((self._send(self._topic, value=value, key=key), rec))
        except KafkaPythonError as exc:  # e.g. no metadata within max_block_ms: broker gone
            self._tally.fail(rec, exc)
            self.problem = self.problem or f"send failed: {exc}"
            return
        self._sent += 1
        if not self._sent & 1023:
            self._drain()

    def _drain(self) -> None:
        """Account for the completed futures at the head of the queue."""
        pending, tally = self._pending, self._tally
        while pending and pending[0][0].is_done:
            future, rec = pending.popleft()
            if future.succeeded():
                tally.ack(rec)
            else:
                tally.fail(rec, future.exception)
                self.problem = self.problem or f"delivery failed: {future.exception}"

    def poll(self) -> None:
        self._drain()

    def flush(self, timeout_s: float) -> None:
        with suppress(KafkaTimeoutError):
            self._producer.flush(timeout=timeout_s)
        self._drain()
        while self._pending:
            future, rec = self._pending.popleft()
            if future.is_done and future.succeeded():
                self._tally.ack(rec)
            else:
                self._tally.fail(rec, future.exception or
                                 f"not acknowledged within {timeout_s:.0f} s")

    def close(self) -> None:
        self._producer.close(timeout=5)


class FileSink:
    """JSONL file: one message value per line (keys are not written)."""

    problem: str | None = None

    def __init__(self, path: Path, tally: Tally) -> None:
        self._path = path
        self._tally = tally
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("wb", buffering=1 << 20)
        except OSError as exc:
            raise UserError(f"Cannot write {path} ({exc.strerror}); choose another --output.") \
                from exc
        self._write = self._file.write

    def describe(self) -> dict[str, Any]:
        return {"kind": "file", "path": str(self._path)}

    def send(self, key: bytes, value: bytes, rec: tuple) -> None:
        self._write(value + b"\n")
        self._tally.ack(rec)

    def poll(self) -> None:
        pass

    def flush(self, timeout_s: float) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise UserError(f"Writing {self._path} failed ({exc.strerror}).") from exc

    def close(self) -> None:
        self._file.close()


class DiscardSink:
    """Acknowledges and drops everything: measures generation speed alone."""

    problem: str | None = None

    def __init__(self, tally: Tally) -> None:
        self._ack = tally.ack

    def describe(self) -> dict[str, Any]:
        return {"kind": "discard"}

    def send(self, key: bytes, value: bytes, rec: tuple) -> None:
        self._ack(rec)

    def poll(self) -> None:
        pass

    def flush(self, timeout_s: float) -> None:
        pass

    def close(self) -> None:
        pass


def kafka_sink(client: str, settings: Settings, topic: str, tally: Tally,
               compression: str | None = None) -> Sink:
    """The Kafka sink for a client name ('confluent' or 'kafka-python')."""
    if client == "confluent":
        return ConfluentSink(settings, topic, tally, compression)
    if client == "kafka-python":
        return KafkaPythonSink(settings, topic, tally, compression)
    raise UserError(f"Unknown Kafka client {client!r}; use one of {', '.join(KAFKA_CLIENTS)}.")


def kafka_destination(settings: Settings, client: str | None, topic: str | None,
                      tally: Tally) -> Sink:
    """The Kafka sink for these settings, after checking the broker answers and the topic exists
    (producing to a missing topic would auto-create it with the wrong partition count)."""
    client = client or settings.kafka_client
    topic = topic or settings.topic_events
    if client not in KAFKA_CLIENTS:
        raise UserError(f"Unknown Kafka client {client!r}; use one of {', '.join(KAFKA_CLIENTS)}.")
    servers = settings.kafka_bootstrap_servers
    if not any(port_answers(host or "127.0.0.1", int(port))
               for host, _, port in (s.strip().rpartition(":") for s in servers.split(","))):
        raise UserError(
            f"Cannot reach Kafka at {servers} (nothing listens there). Start the embedded broker "
            "with `ecom stack up`, or set ECOM_KAFKA_BOOTSTRAP_SERVERS to a running cluster.")
    admin = admin_client(settings)
    try:
        partitions = topic_partitions(admin, [topic]).get(topic)
    finally:
        admin.close()
    if not partitions:
        raise UserError(
            f"Topic {topic} does not exist on {settings.kafka_bootstrap_servers}. Run "
            "`ecom stack up` (or `ecom kafka init`) first, or pass an existing --topic.")
    return kafka_sink(client, settings, topic, tally)
