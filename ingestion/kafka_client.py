"""Thin Kafka access for the Spark source: partitions, log ends, and reading an offset range.

Two implementations behind one interface, chosen by `Settings.kafka_client`:
`confluent` (librdkafka; 2-3x faster as a reader, the default) and `kafka-python`.
No consumer groups: partitions are assigned by hand (group joins are slow on the embedded
broker, and Spark's checkpoint - not the broker - owns the offsets).

Log end = the fetch high-water mark, not ListOffsets(LATEST), which the embedded broker
(tansu) answers short of the log end: see `ecom.kafka_offsets`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_offsets import fetched_log_ends, topic_partitions, unreachable
from ecom.kafka_security import KafkaSecurity

#: Arrow schema of what the source emits (Spark: topic string, partition int, offset long,
#: timestamp timestamp, key string, value binary).
ARROW_SCHEMA = pa.schema([
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("timestamp", pa.timestamp("us", tz="UTC")),
    ("key", pa.string()),
    ("value", pa.binary()),
])
SPARK_SCHEMA = (
    "topic string, partition int, offset long, timestamp timestamp, key string, value binary"
)
ARROW_BATCH_ROWS = 10_000
PROBE_TIMEOUT_S = 10.0


class KafkaClient(Protocol):
    def partitions(self, topic: str) -> list[int]: ...
    def log_starts(self, topic: str, partitions: list[int]) -> dict[int, int]: ...
    def log_ends(self, topic: str, partitions: list[int]) -> dict[int, int]: ...
    def read_range(
        self, topic: str, partition: int, start: int, end: int
    ) -> Iterator[pa.RecordBatch]: ...
    def close(self) -> None: ...


def make_client(bootstrap: str, client: str = "confluent",
                security: KafkaSecurity | None = None) -> KafkaClient:
    """A reader of `bootstrap` with the given client library and security (in executors:
    `KafkaSecurity.from_options`, which takes the secrets from the environment)."""
    security = security or KafkaSecurity()
    if client == "confluent":
        return ConfluentClient(bootstrap, security)
    if client in {"kafka-python", "kafka_python"}:
        return KafkaPythonClient(bootstrap, security)
    raise UserError(f"Unknown ECOM_KAFKA_CLIENT {client!r}: use 'confluent' or 'kafka-python'.")


def settings_client(settings: Settings) -> KafkaClient:
    """The driver's reader: the settings' cluster, client library and security."""
    return make_client(settings.kafka_bootstrap_servers, settings.kafka_client,
                       KafkaSecurity.of(settings))


def topic_offsets(settings: Settings, topic: str
                  ) -> tuple[list[int], dict[int, int], dict[int, int]]:
    """The topic's partitions, and each one's log start and log end (the driver's reader)."""
    client = settings_client(settings)
    try:
        partitions = client.partitions(topic)
        return (partitions, client.log_starts(topic, partitions),
                client.log_ends(topic, partitions))
    finally:
        client.close()


class _BatchBuilder:
    """Accumulates records into Arrow record batches of ARROW_BATCH_ROWS rows."""

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self._reset()

    def _reset(self) -> None:
        self.offsets: list[int] = []
        self.timestamps: list[int | None] = []
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []

    def add(self, offset: int, ts_ms: int | None, key: bytes | None, value: bytes | None) -> None:
        self.offsets.append(offset)
        self.timestamps.append(ts_ms * 1000 if ts_ms is not None and ts_ms >= 0 else None)
        self.keys.append(key)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.offsets)

    def flush(self) -> pa.RecordBatch:
        n = len(self.offsets)
        keys = pa.array(self.keys, pa.binary())
        batch = pa.RecordBatch.from_arrays([
            pa.array([self.topic] * n, pa.string()),
            pa.array([self.partition] * n, pa.int32()),
            pa.array(self.offsets, pa.int64()),
            pa.array(self.timestamps, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            _binary_to_string(keys),
            pa.array(self.values, pa.binary()),
        ], schema=ARROW_SCHEMA)
        self._reset()
        return batch


def _binary_to_string(arr: pa.Array) -> pa.Array:
    """Keys as text: valid UTF-8 keys cast directly, anything else decoded with replacement."""
    try:
        return arr.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array([k.decode("utf-8", "replace") if k is not None else None
                         for k in arr.to_pylist()], pa.string())


class ConfluentClient:
    """librdkafka via confluent-kafka."""

    def __init__(self, bootstrap: str, security: KafkaSecurity | None = None) -> None:
        self.bootstrap = bootstrap
        self.security = security or KafkaSecurity()
        self._probe: Any = None

    def _consumer(self, **extra: Any) -> Any:
        from confluent_kafka import Consumer

        conf = {
            "bootstrap.servers": self.bootstrap,
            "group.id": "ecom-ingest-unused",  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
            "socket.connection.setup.timeout.ms": 5000,
            "log_level": 3,
            **self.security.confluent(),
        }
        conf.update(extra)
        return Consumer(conf)

    def partitions(self, topic: str) -> list[int]:
        return topic_partitions(self._probe_consumer(), self.bootstrap, topic, PROBE_TIMEOUT_S)

    def _probe_consumer(self) -> Any:
        if self._probe is None:
            self._probe = self._consumer(**{"max.partition.fetch.bytes": 65536})
        return self._probe

    def log_starts(self, topic: str, partitions: list[int]) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        probe = self._probe_consumer()
        out = {}
        for p in partitions:
            try:
                low, _ = probe.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=PROBE_TIMEOUT_S, cached=False)
            except Exception as exc:
                raise unreachable(self.bootstrap, exc) from exc
            out[p] = low
        return out

    def log_ends(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """High-water marks from a fetch response (ListOffsets alone undercounts on tansu)."""
        return fetched_log_ends(self._probe_consumer(), self.bootstrap, topic, partitions,
                                PROBE_TIMEOUT_S)

    def read_range(self, topic: str, partition: int, start: int, end: int
                   ) -> Iterator[pa.RecordBatch]:
        """Records with start <= offset < end, as Arrow batches."""
        from confluent_kafka import KafkaError, TopicPartition

        if end <= start:
            return
        consumer = self._consumer(**{
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            "queued.max.messages.kbytes": 256 * 1024,
        })
        try:
            consumer.assign([TopicPartition(topic, partition, start)])
            pending: list[Any] = []
            position = start
            idle_deadline = time.monotonic() + 60
            while position < end:
                # ask for exactly what is left: consume() waits until it has that many
                msgs = consumer.consume(min(ARROW_BATCH_ROWS, end - position), timeout=0.5)
                if not msgs:
                    if time.monotonic() > idle_deadline:
                        raise UserError(
                            f"Kafka stopped answering while reading {topic}[{partition}] at "
                            f"offset {position} (wanted up to {end - 1})."
                        )
                    continue
                idle_deadline = time.monotonic() + 60
                for msg in msgs:
                    err = msg.error()
                    if err is None:
                        offset = msg.offset()
                        if offset >= end:
                            position = end
                            break
                        pending.append(msg)
                        position = offset + 1
                    elif err.code() == KafkaError._PARTITION_EOF:
                        position = max(position, msg.offset())  # skips trailing markers
                    else:
                        raise _read_error(topic, partition, position, end, err)
                if len(pending) >= ARROW_BATCH_ROWS:
                    yield _confluent_batch(topic, partition, pending)
                    pending = []
            if pending:
                yield _confluent_batch(topic, partition, pending)
        finally:
            consumer.close()

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None


def _confluent_batch(topic: str, partition: int, msgs: list[Any]) -> pa.RecordBatch:
    """confluent-kafka messages -> one Arrow batch (list comprehensions: ~4x a per-row loop)."""
    n = len(msgs)
    stamps = [m.timestamp() for m in msgs]
    return pa.RecordBatch.from_arrays([
        pa.array([topic] * n, pa.string()),
        pa.array([partition] * n, pa.int32()),
        pa.array([m.offset() for m in msgs], pa.int64()),
        pa.array([ts * 1000 if kind and ts >= 0 else None for kind, ts in stamps],
                 pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        _binary_to_string(pa.array([m.key() for m in msgs], pa.binary())),
        pa.array([m.value() for m in msgs], pa.binary()),
    ], schema=ARROW_SCHEMA)


def _read_error(topic: str, partition: int, position: int, end: int, err: object) -> UserError:
    text = str(err)
    if "OFFSET_OUT_OF_RANGE" in text.upper() or "out of range" in text.lower():
        return UserError(
            f"Offsets {position}..{end - 1} of {topic}[{partition}] are no longer on the broker "
            "(retention or broker data loss). Those events are gone from Kafka; restart with "
            "`ecom ingest stream --reset-checkpoint` to continue from what the broker still has."
        )
    return UserError(f"Reading {topic}[{partition}] at offset {position} failed: {text}")


def _codec_error(topic: str, exc: Exception) -> UserError:
    return UserError(
        f"kafka-python cannot decompress {topic} ({exc}). Install the codec "
        "(`.venv/bin/pip install lz4`) or set ECOM_KAFKA_CLIENT=confluent."
    )


class KafkaPythonClient:
    """The pure-Python client (kafka-python)."""

    def __init__(self, bootstrap: str, security: KafkaSecurity | None = None) -> None:
        self.bootstrap = bootstrap
        self.security = security or KafkaSecurity()
        self._probe: Any = None

    def _consumer(self, **extra: Any) -> Any:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        try:
            return KafkaConsumer(
                bootstrap_servers=self.bootstrap.split(","), group_id=None,
                enable_auto_commit=False, auto_offset_reset="none", fetch_max_wait_ms=50,
                request_timeout_ms=int(PROBE_TIMEOUT_S * 1000) + 5000,
                **self.security.kafka_python(), **extra,
            )
        except (KafkaError, OSError) as exc:
            raise unreachable(self.bootstrap, exc) from exc

    def _probe_consumer(self) -> Any:
        if self._probe is None:
            self._probe = self._consumer(max_partition_fetch_bytes=65536)
        return self._probe

    def partitions(self, topic: str) -> list[int]:
        probe = self._probe_consumer()
        found = probe.partitions_for_topic(topic)
        if not found:
            raise UserError(
                f"Topic {topic} does not exist on {self.bootstrap}. Run `ecom stack up` "
                "(or `ecom kafka init`) to create the project's topics."
            )
        return sorted(found)

    def log_starts(self, topic: str, partitions: list[int]) -> dict[int, int]:
        from kafka import TopicPartition

        tps = [TopicPartition(topic, p) for p in partitions]
        found = self._probe_consumer().beginning_offsets(tps)
        return {tp.partition: off for tp, off in found.items()}

    def log_ends(self, topic: str, partitions: list[int]) -> dict[int, int]:
        from kafka import TopicPartition
        from kafka.errors import UnsupportedCodecError

        probe = self._probe_consumer()
        tps = [TopicPartition(topic, p) for p in partitions]
        listed = {tp.partition: off for tp, off in probe.end_offsets(tps).items()}
        probe.assign(tps)
        for tp in tps:
            probe.seek(tp, listed[tp.partition])
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        pending = set(partitions)
        while pending and time.monotonic() < deadline:
            try:
                probe.poll(timeout_ms=200, max_records=1000)
            except UnsupportedCodecError as exc:
                raise _codec_error(topic, exc) from exc
            for tp in tps:
                if probe.highwater(tp) is not None:
                    pending.discard(tp.partition)
        if pending:
            raise unreachable(self.bootstrap, f"no fetch answer for partitions {sorted(pending)}")
        ends = {tp.partition: max(probe.highwater(tp), listed[tp.partition]) for tp in tps}
        probe.assign([])
        return ends

    def read_range(self, topic: str, partition: int, start: int, end: int
                   ) -> Iterator[pa.RecordBatch]:
        from kafka import TopicPartition
        from kafka.errors import OffsetOutOfRangeError, UnsupportedCodecError

        if end <= start:
            return
        consumer = self._consumer(max_partition_fetch_bytes=16 * 1024 * 1024,
                                  fetch_max_bytes=64 * 1024 * 1024)
        tp = TopicPartition(topic, partition)
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            builder = _BatchBuilder(topic, partition)
            position = start
            idle_deadline = time.monotonic() + 60
            while position < end:
                try:
                    polled = consumer.poll(timeout_ms=1000, max_records=10_000)
                except OffsetOutOfRangeError as exc:
                    raise _read_error(topic, partition, position, end, exc) from exc
                except UnsupportedCodecError as exc:
                    raise _codec_error(topic, exc) from exc
                records = polled.get(tp, [])
                if not records:
                    position = max(position, consumer.position(tp))
                    if time.monotonic() > idle_deadline:
                        raise UserError(
                            f"Kafka stopped answering while reading {topic}[{partition}] at "
                            f"offset {position} (wanted up to {end - 1})."
                        )
                    continue
                idle_deadline = time.monotonic() + 60
                for rec in records:
                    if rec.offset >= end:
                        position = end
                        break
                    builder.add(rec.offset, rec.timestamp if rec.timestamp_type is not None
                                else None, rec.key, rec.value)
                    position = rec.offset + 1
                    if len(builder) >= ARROW_BATCH_ROWS:
                        yield builder.flush()
            if len(builder):
                yield builder.flush()
        finally:
            consumer.close()

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
