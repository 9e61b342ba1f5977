"""What of the events topic is not in the warehouse yet, asked without starting Spark.

The sink lands every offset it reads in exactly one of `raw.raw_events` and
`raw.rejected_events`, keyed by (topic, epoch, partition, offset) and unique there. So the
offsets still to ingest are, per partition, those of [log start, log end) missing from both
tables in the topic's current epoch: when the landed coordinates in that range number as
many as the range, a replay would read every record only to skip it. The daily DAG's
`extract` asks this first and starts no Spark for nothing (the stream usually landed it all).

- Log end: the fetch high-water mark (`KafkaClient.log_ends`), not ListOffsets(LATEST),
  which the embedded broker answers short of the end.
- Landed: counted on the coordinates' unique index (an index-only scan: ~0.2 s per million
  offsets on 2 cores), bounded by what the broker still holds (retention).
- Exact rather than clever: the ingest ledger and the stream's checkpoint describe ranges
  read, and a time-bounded replay reads a range without landing all of it.
- A broker that lost its log (the embedded one keeps it in memory) hands out offsets again
  from 0: coordinates landed beyond its log end say so, and then nothing is skipped (the
  replay stops loudly on the re-used offsets, as the stream does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ecom.config import Settings
from ecom.db import connection
from ingestion.epochs import current_epoch
from ingestion.kafka_client import topic_offsets

# landed coordinates per partition range; both tables, the topic's current epoch
_LANDED_SQL = """
with ranges (kafka_partition, lo, hi) as (select * from unnest(%(p)s::int[], %(lo)s::bigint[],
                                                                %(hi)s::bigint[]))
select r.kafka_partition,
       (select count(*) from raw.raw_events e
         where e.kafka_topic = %(topic)s and e.kafka_epoch = %(epoch)s
           and e.kafka_partition = r.kafka_partition
           and e.kafka_offset >= r.lo and e.kafka_offset < r.hi)
     + (select count(*) from raw.rejected_events j
         where j.kafka_topic = %(topic)s and j.kafka_epoch = %(epoch)s
           and j.kafka_partition = r.kafka_partition
           and j.kafka_offset >= r.lo and j.kafka_offset < r.hi),
       greatest((select max(e.kafka_offset) from raw.raw_events e
                  where e.kafka_topic = %(topic)s and e.kafka_epoch = %(epoch)s
                    and e.kafka_partition = r.kafka_partition),
                (select max(j.kafka_offset) from raw.rejected_events j
                  where j.kafka_topic = %(topic)s and j.kafka_epoch = %(epoch)s
                    and j.kafka_partition = r.kafka_partition)) + 1
from ranges r
"""


@dataclass(frozen=True)
class PartitionBacklog:
    partition: int
    log_start: int
    log_end: int
    landed: int
    landed_end: int | None = None  # 1 + the highest offset landed in the epoch

    @property
    def went_backwards(self) -> bool:
        """Landed offsets beyond the log end: the broker lost its log and re-uses offsets."""
        return self.landed_end is not None and self.landed_end > self.log_end

    @property
    def offsets(self) -> int:
        return max(0, self.log_end - self.log_start)

    @property
    def missing(self) -> int:
        return max(0, self.offsets - self.landed)


@dataclass(frozen=True)
class TopicBacklog:
    topic: str
    epoch: int
    partitions: tuple[PartitionBacklog, ...]
    seconds: float

    @property
    def offsets(self) -> int:
        return sum(p.offsets for p in self.partitions)

    @property
    def missing(self) -> int:
        return sum(p.missing for p in self.partitions)

    @property
    def nothing_to_ingest(self) -> bool:
        return not self.missing and not any(p.went_backwards for p in self.partitions)

    def line(self) -> str:
        if any(p.went_backwards for p in self.partitions):
            ends = ", ".join(f"p{p.partition} {p.landed_end:,} > {p.log_end:,}"
                             for p in self.partitions if p.went_backwards)
            return (f"{self.topic}: offsets landed beyond the broker's log end ({ends}): the "
                    "broker lost data")
        if not self.missing:
            return (f"{self.topic}: all {self.offsets:,} offsets on the broker are landed "
                    f"(epoch {self.epoch}, checked in {self.seconds:.2f} s): nothing to ingest")
        parts = ", ".join(f"p{p.partition} {p.missing:,}" for p in self.partitions if p.missing)
        return (f"{self.topic}: {self.missing:,} of {self.offsets:,} offsets not landed yet "
                f"({parts}; epoch {self.epoch})")


def topic_backlog(settings: Settings) -> TopicBacklog:
    """Compare the events topic's offsets on the broker with what landed (see above)."""
    started = time.perf_counter()
    topic = settings.topic_events
    partitions, starts, ends = topic_offsets(settings, topic)  # with the cluster's TLS/SASL
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        epoch = current_epoch(cur, topic)
        cur.execute(_LANDED_SQL, {
            "p": partitions, "lo": [starts[p] for p in partitions],
            "hi": [ends[p] for p in partitions], "topic": topic, "epoch": epoch})
        landed = {p: (n, end) for p, n, end in cur.fetchall()}
    return TopicBacklog(topic, epoch, tuple(
        PartitionBacklog(p, starts[p], ends[p], *landed.get(p, (0, None))) for p in partitions),
        time.perf_counter() - started)
