"""Kafka topic administration and readiness checks (kafka-python, the default client)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_security import KafkaSecurity
from ecom.ports import port_answers


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    created: bool


def any_bootstrap_answers(settings: Settings) -> bool:
    for server in settings.kafka_bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit() and port_answers(host or "127.0.0.1", int(port), timeout=1.0):
            return True
    return False


def admin_client(settings: Settings, timeout_s: float = 5.0) -> KafkaAdminClient:
    if not any_bootstrap_answers(settings):  # kafka-python would retry for ~30 s
        raise UserError(
            f"Nothing answers at {settings.kafka_bootstrap_servers}. Start the embedded broker "
            "with `ecom stack up`, or set ECOM_KAFKA_BOOTSTRAP_SERVERS to a running cluster."
        )
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
            client_id="ecom-admin",
            request_timeout_ms=int(timeout_s * 1000),
            **KafkaSecurity.of(settings).kafka_python(),
        )
    except (KafkaError, OSError) as exc:
        raise UserError(
            f"Cannot reach Kafka at {settings.kafka_bootstrap_servers} ({type(exc).__name__}). "
            "Start the embedded broker with `ecom stack up`, or set ECOM_KAFKA_BOOTSTRAP_SERVERS "
            "to a running cluster."
        ) from exc


def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Block until the broker answers a metadata request."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = admin_client(settings, timeout_s=2.0)
            try:
                client.list_topics()
                return
            finally:
                client.close()
        except (UserError, KafkaError, OSError):
            if time.monotonic() > deadline:
                raise UserError(
                    f"Kafka at {settings.kafka_bootstrap_servers} did not answer metadata within "
                    f"{timeout_s:.0f} s. Check the broker log under the data dir."
                ) from None
            time.sleep(0.2)


def ensure_topics(settings: Settings) -> list[TopicState]:
    """Create the project's topics if missing (idempotent); report partition counts.

    Topics must exist before anyone produces: the embedded broker auto-creates unknown
    topics with 4 partitions, and it cannot add partitions later.
    """
    client = admin_client(settings)
    try:
        existing = set(client.list_topics())
        created: set[str] = set()
        retention = settings.topic_retention_ms
        for name, partitions in settings.topics.items():
            if name in existing:
                continue
            topic = NewTopic(
                name, partitions, 1, topic_configs={"retention.ms": str(retention[name])}
            )
            try:
                client.create_topics([topic])
                created.add(name)
            except TopicAlreadyExistsError:
                pass
        counts = topic_partitions(client, list(settings.topics))
    finally:
        client.close()
    states = []
    for name, expected in settings.topics.items():
        actual = counts.get(name, 0)
        if name == settings.topic_events and actual != expected:
            raise UserError(
                f"Topic {name} has {actual} partitions, the project expects {expected}. "
                "It was probably auto-created by a producer before `ecom stack up`; delete it "
                "(or restart the embedded broker) and run `ecom kafka init`."
            )
        states.append(TopicState(name, actual, name in created))
    return states


def create_topic(settings: Settings, name: str, partitions: int = 3) -> str:
    """Create one topic (scratch topics for tests and benchmarks); returns its name."""
    client = admin_client(settings)
    try:
        client.create_topics([NewTopic(name, partitions, 1)])
    finally:
        client.close()
    return name


def topic_partitions(client: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    present = set(client.list_topics())
    wanted = [n for n in names if n in present]
    if not wanted:
        return {}
    return {d["name"]: len(d["partitions"]) for d in client.describe_topics(wanted)}


def describe(settings: Settings) -> dict[str, int]:
    """Partition count of each project topic that exists."""
    client = admin_client(settings)
    try:
        return topic_partitions(client, list(settings.topics))
    finally:
        client.close()


@dataclass(frozen=True)
class TopicRetention:
    """A topic's `retention.ms`: what the project wants, what the broker reported before
    and after `ensure_retention` (None: it reports none), and whether it was changed."""

    topic: str
    wanted_ms: int
    found_ms: int | None
    now_ms: int | None
    changed: bool

    @property
    def holds(self) -> bool:
        return self.now_ms == self.wanted_ms


def _retention_ms(client: KafkaAdminClient, topic: str) -> int | None:
    # no key filter: tansu drops the connection when the request names config keys
    described = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                        config_filter="all")
    entry = (described.get("topic", {}).get(topic) or {}).get("retention.ms") or {}
    value = entry.get("value")
    return int(value) if value not in (None, "") else None


def ensure_retention(settings: Settings, *, apply: bool = True) -> list[TopicRetention]:
    """Check each existing project topic's retention.ms against the project's (events 7 d,
    processed 30 d, ...) and, with `apply`, set it where it differs; then read it back.

    An incremental alter: other settings of the topic (a real cluster's
    min.insync.replicas, ...) are left as they are."""
    client = admin_client(settings)
    try:
        existing = set(client.list_topics())
        out = []
        for topic, wanted in settings.topic_retention_ms.items():
            if topic not in existing:
                continue
            found = _retention_ms(client, topic)
            changed = False
            if apply and found != wanted:
                try:
                    client.alter_configs([ConfigResource(
                        ConfigResourceType.TOPIC, topic, configs={"retention.ms": str(wanted)})],
                        raise_on_unknown=False)
                    changed = True
                except KafkaError as exc:
                    raise UserError(
                        f"Kafka at {settings.kafka_bootstrap_servers} refused to set "
                        f"retention.ms={wanted} on {topic} ({type(exc).__name__}): set it with "
                        "your cluster's tooling, or grant this client AlterConfigs on the topic."
                    ) from exc
            now = _retention_ms(client, topic) if changed else found
            out.append(TopicRetention(topic, wanted, found, now, changed))
        return out
    finally:
        client.close()
