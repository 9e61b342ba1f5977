"""One micro-batch (a Spark DataFrame of Kafka records) landed exactly once, by the design
`ECOM_SINK_WRITER` selects (both end in one PostgreSQL commit with the ledger row):

- `driver` (default): the driver receives the records as Spark's tasks finish, validates
  them and COPYs the new rows straight into the raw tables (`ingestion.sink`).
- `executors`: the executors validate and COPY into a staging table of the batch; the
  driver's transaction moves the rows with set-based SQL (`ingestion.staging`). The driver
  parses nothing, so adding executors adds throughput until PostgreSQL's one INSERT ...
  SELECT per task is the limit.

After the commit, the landed events go to `processed-events` from the driver, with one
producer, in both cases (at-least-once: see `ingestion.publish`).

Which is faster where, measured: docs/scaling.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ecom.config import Settings
from ecom.db import connect
from ingestion.collect import arrow_batches
from ingestion.publish import Publisher
from ingestion.records import KafkaRecords
from ingestion.sink import BatchResult, land_batch


@dataclass
class Connections:
    """The loader connections a writer needs, opened on first use and reopened if broken."""

    settings: Settings
    _conns: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, autocommit: bool = False) -> Any:
        conn = self._conns.get(name)
        if conn is None or conn.closed:
            conn = connect(self.settings, "loader", autocommit=autocommit)
            self._conns[name] = conn
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            if not conn.closed:
                conn.close()
        self._conns.clear()


def land(settings: Settings, conns: Connections, query_name: str, batch_id: int, df: Any,
         publisher: Publisher | None = None) -> BatchResult:
    """Land the micro-batch `df` (the source's columns) exactly once, then publish its
    landed events with `publisher` if given (see the docstring)."""
    tx, check = conns.get("tx"), conns.get("check", autocommit=True)
    if settings.sink_writer == "executors":
        from ingestion.staging import land_staged

        return land_staged(settings, tx, check, query_name, batch_id, df, publisher)
    chunks = (KafkaRecords.from_arrow(b) for b in arrow_batches(df) if b.num_rows)
    result = land_batch(tx, check, query_name, batch_id, chunks)
    if result.landed:
        result.newest_event_at = max(event.event_timestamp for event in result.landed)
    if publisher is not None and result.landed:
        t0 = time.perf_counter()
        result.published = publisher.publish(result.landed)
        result.timings["publish"] = time.perf_counter() - t0
    result.landed = []  # free memory; counts stay
    return result
