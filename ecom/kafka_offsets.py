"""Log-end offsets of a topic's partitions, exact on every broker the project runs on.

Log end = the fetch high-water mark. ListOffsets(LATEST) is not used for it because the
embedded broker (tansu) answers it with the base offset of the last record batch, short of
the log end; a fetch response carries the true high-water mark, so `fetched_log_ends`
fetches a little from there and reads the mark the response brought. Ingestion's Kafka
client and the operations dashboard (lag per partition) both take log ends from here.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import any_bootstrap_answers
from ecom.kafka_clients import confluent_config

#: consumer settings of a probe: never joins a group, never commits, reports partition ends
PROBE_CONFIG = {
    "group.id": "ecom-probe-unused",  # required by librdkafka; never joined
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "error",
    "enable.partition.eof": True,
    "fetch.wait.max.ms": 50,
    "max.partition.fetch.bytes": 65536,
    "socket.connection.setup.timeout.ms": 5000,
    "log_level": 3,
}


def unreachable(bootstrap: str, exc: object) -> UserError:
    return UserError(
        f"Cannot read from Kafka at {bootstrap} ({exc}). Start the embedded broker with "
        "`ecom stack up`, or set ECOM_KAFKA_BOOTSTRAP_SERVERS to a running cluster."
    )


def topic_partitions(probe: Any, bootstrap: str, topic: str, timeout_s: float) -> list[int]:
    """The partitions of `topic` from the metadata a confluent-kafka client `probe` asks
    for; UserError when the broker does not answer or the topic does not exist."""
    try:
        meta = probe.list_topics(topic, timeout=timeout_s)
    except Exception as exc:
        raise unreachable(bootstrap, exc) from exc
    info = meta.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise UserError(
            f"Topic {topic} does not exist on {bootstrap}. Run `ecom stack up` (or "
            "`ecom kafka init`) to create the project's topics.")
    return sorted(info.partitions)


def fetched_log_ends(probe: Any, bootstrap: str, topic: str, partitions: list[int],
                     timeout_s: float) -> dict[int, int]:
    """High-water marks of `partitions` read from a fetch response, with a confluent-kafka
    consumer `probe` (left unassigned); UserError when the broker does not answer."""
    listed = {}
    for p in partitions:
        try:
            low, high = probe.get_watermark_offsets(
                TopicPartition(topic, p), timeout=timeout_s, cached=False)
        except Exception as exc:
            raise unreachable(bootstrap, exc) from exc
        listed[p] = max(low, high)
    probe.assign([TopicPartition(topic, p, listed[p]) for p in partitions])
    pending = set(partitions)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for msg in probe.consume(1000, timeout=0.02):
            err = msg.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise UserError(f"Kafka fetch from {topic}[{msg.partition()}] failed: {err}")
            pending.discard(msg.partition())
    probe.unassign()
    if pending:
        raise unreachable(bootstrap, f"no fetch answer for partitions {sorted(pending)}")
    ends = {}
    for p in partitions:
        _, high = probe.get_watermark_offsets(TopicPartition(topic, p), cached=True)
        ends[p] = max(high, listed[p])
    return ends


def log_end_offsets(settings: Settings, topic: str, *, client_id: str = "ecom-probe",
                    timeout_s: float = 5.0) -> dict[int, int]:
    """Partition -> log end of `topic`; UserError when Kafka or the topic is missing."""
    if not any_bootstrap_answers(settings):  # librdkafka would wait out the timeout
        raise unreachable(settings.kafka_bootstrap_servers, "nothing answers")
    conf = {k: v for k, v in confluent_config(settings, client_id).items() if k != "acks"}
    probe = Consumer({**conf, **PROBE_CONFIG})
    try:
        partitions = topic_partitions(probe, settings.kafka_bootstrap_servers, topic, timeout_s)
        return fetched_log_ends(probe, settings.kafka_bootstrap_servers, topic, partitions,
                                timeout_s)
    finally:
        probe.close()
