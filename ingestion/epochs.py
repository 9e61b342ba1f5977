"""Topic epochs (`ops.ingest_epochs`): the embedded broker loses its topics on restart and
hands out offsets from 0 again, so a record is identified by (topic, epoch, partition,
offset); `ecom ingest stream --reset-checkpoint` opens a new epoch."""

from __future__ import annotations

from typing import Any


def current_epoch(cur: Any, topic: str) -> int:
    """The topic's current epoch: the newest in `ops.ingest_epochs`, 0 if none was opened."""
    cur.execute("select coalesce(max(kafka_epoch), 0) from ops.ingest_epochs "
                "where kafka_topic = %s", (topic,))
    return cur.fetchone()[0]


def start_epoch(conn: Any, topic: str) -> int:
    """Open a new epoch of `topic` (after the broker lost it): 1 + the highest known.

    Under the topic's ingest lock, so no batch is landing meanwhile; commits.
    """
    with conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"ecom-ingest:{topic}",))
        cur.execute(
            "select greatest((select max(kafka_epoch) from ops.ingest_epochs "
            "where kafka_topic = %(t)s), (select max(kafka_epoch) from raw.raw_events "
            "where kafka_topic = %(t)s), (select max(kafka_epoch) from raw.rejected_events "
            "where kafka_topic = %(t)s), 0)",
            {"t": topic})
        epoch = cur.fetchone()[0] + 1
        cur.execute("insert into ops.ingest_epochs (kafka_topic, kafka_epoch) values (%s, %s)",
                    (topic, epoch))
    return epoch
