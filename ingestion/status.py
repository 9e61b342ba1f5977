"""`ecom ingest status`: lag per partition and what the warehouse holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError
from ingestion.checkpoint import committed_offsets, stream_paths
from ingestion.kafka_client import settings_client


@dataclass
class PartitionStatus:
    partition: int
    log_end: int
    committed: int | None

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else self.log_end - self.committed


@dataclass
class IngestStatus:
    topic: str
    partitions: list[PartitionStatus] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def ingest_status(settings: Settings) -> IngestStatus:
    paths = stream_paths(settings)
    report = IngestStatus(settings.topic_events)
    committed = committed_offsets(paths.events) or {}
    client = settings_client(settings)
    try:
        partitions = client.partitions(settings.topic_events)
        ends = client.log_ends(settings.topic_events, partitions)
    finally:
        client.close()
    for p in partitions:
        report.partitions.append(PartitionStatus(p, ends[p], committed.get(str(p))))
    if not committed:
        report.notes.append("the stream has not committed a batch yet (no checkpoint)")
    if any(row.lag is not None and row.lag < 0 for row in report.partitions):
        report.notes.append("the checkpoint is AHEAD of the log end: the broker lost data; "
                            "`ecom ingest stream` will explain and stop")
    try:
        with connect(settings, "loader") as conn, conn.cursor() as cur:
            cur.execute("select count(*) from raw.raw_events")
            raw = cur.fetchone()[0]
            cur.execute("select reason_code, count(*) from raw.rejected_events group by 1 "
                        "order by 2 desc")
            reasons = cur.fetchall()
            cur.execute("select count(*), max(committed_at) from ops.ingest_batches")
            batches, last = cur.fetchone()
            cur.execute("select count(*), max(updated_at) from raw.realtime_metrics")
            windows, windows_at = cur.fetchone()
    except UserError as exc:
        report.notes.append(f"warehouse not reachable: {exc}")
        return report
    rejected = sum(n for _, n in reasons)
    report.notes.append(f"raw.raw_events: {raw:,} rows; raw.rejected_events: {rejected:,} rows"
                        + (" (" + ", ".join(f"{r} {n:,}" for r, n in reasons) + ")"
                           if reasons else ""))
    report.notes.append(f"ops.ingest_batches: {batches:,} batches, last committed {last or '-'}")
    report.notes.append(f"raw.realtime_metrics: {windows:,} window rows, last update "
                        f"{windows_at or '-'}")
    return report
