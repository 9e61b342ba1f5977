"""Which raw rows the broker could still hand out again: those must stay in raw.

Ingestion's exactly-once rests on raw itself: the sink skips a Kafka record whose
coordinates (topic, epoch, partition, offset) are already in `raw_events` or
`rejected_events` (ingestion/sink.py). A row deleted from raw while the broker still
serves its record would land again at the next replay (the daily DAG's extract replays
the topic from the earliest offset). So a row may leave raw only when its record is out
of the broker's reach: its topic is gone, it belongs to an older topic epoch (the broker
lost that log), or its offset is below its partition's log start (retention deleted it).

A real Kafka deletes records after `retention.ms` (7 days for the events topic), so days
older than the archive's 30 days are normally out of reach. The embedded broker (tansu,
memory storage) never deletes: there, rows of the running broker's epoch stay until it
restarts and ingestion opens a new epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import admin_client


@dataclass(frozen=True)
class Reach:
    """The broker's log start offset of each (topic, partition) it holds, or None when
    Kafka did not answer (then every row of a topic's current epoch counts as in reach)."""

    log_start: dict[tuple[str, int], int] | None

    @property
    def known(self) -> bool:
        return self.log_start is not None


def broker_reach(settings: Settings, topics: set[str]) -> Reach:
    """Ask the broker where the log of each of `topics` it holds begins (topics it does not
    hold are left out: asking about them would make the embedded broker create them)."""
    try:
        client = admin_client(settings, timeout_s=5.0)
    except UserError:
        return Reach(None)
    try:
        present = sorted(set(client.list_topics()) & topics)
        partitions = [TopicPartition(d["name"], p["partition_index"])
                      for d in (client.describe_topics(present) if present else [])
                      for p in d["partitions"]]
    except (KafkaError, OSError):
        return Reach(None)
    finally:
        client.close()
    if not partitions:
        return Reach({})
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
                             client_id="ecom-maintenance", request_timeout_ms=10_000,
                             enable_auto_commit=False)
    try:
        offsets = consumer.beginning_offsets(partitions)
    except (KafkaError, OSError):
        return Reach(None)
    finally:
        consumer.close()
    return Reach({(tp.topic, tp.partition): int(o) for tp, o in offsets.items()})


def load_reach(cur: Any, reach: Reach, topics: set[str]) -> None:
    """Temp table `kafka_reach (topic, epoch, partition, log_start)` for this transaction:
    the coordinates of `topics` the broker may still serve (each topic's current epoch)."""
    cur.execute("create temp table if not exists kafka_reach (topic text, epoch integer, "
                "kafka_partition integer, log_start bigint) on commit drop")
    cur.execute("truncate kafka_reach")
    epochs = {}
    for topic in sorted(topics):
        cur.execute("select coalesce(max(kafka_epoch), 0) from ops.ingest_epochs "
                    "where kafka_topic = %s", (topic,))
        epochs[topic] = cur.fetchone()[0]
    if reach.log_start is None:  # unknown: every partition of the current epoch, from 0
        rows = [(t, e, None, 0) for t, e in epochs.items()]
    else:
        rows = [(t, epochs[t], p, start) for (t, p), start in reach.log_start.items()
                if t in epochs]
    if rows:
        cur.executemany("insert into kafka_reach values (%s, %s, %s, %s)", rows)


#: SQL predicate on a raw row `r`: its record may still be read from Kafka
IN_REACH = """exists (
    select from kafka_reach k
    where k.topic = r.kafka_topic and k.epoch = r.kafka_epoch
        and (k.kafka_partition is null or k.kafka_partition = r.kafka_partition)
        and r.kafka_offset >= k.log_start)"""
