"""`ingestion.backlog`: when the DAG's extract may skip Spark (pure logic, no broker)."""

from __future__ import annotations

from ingestion.backlog import PartitionBacklog, TopicBacklog


def _topic(*partitions: PartitionBacklog) -> TopicBacklog:
    return TopicBacklog("ecommerce-events", 0, partitions, 0.05)


def test_nothing_to_ingest_when_every_offset_on_the_broker_landed() -> None:
    backlog = _topic(PartitionBacklog(0, 0, 100, 100, 100), PartitionBacklog(1, 40, 90, 50, 90))
    assert backlog.offsets == 150 and backlog.missing == 0
    assert backlog.nothing_to_ingest
    assert "all 150 offsets" in backlog.line()


def test_offsets_not_landed_are_counted_per_partition() -> None:
    backlog = _topic(PartitionBacklog(0, 0, 100, 97, 100), PartitionBacklog(1, 0, 10, 0, None))
    assert backlog.missing == 13 and not backlog.nothing_to_ingest
    assert "13 of 110 offsets" in backlog.line() and "p0 3, p1 10" in backlog.line()


def test_a_broker_that_lost_its_log_is_never_skipped() -> None:
    """The embedded broker restarted: offsets from 0 again, all of them 'landed' in the
    epoch (they were, for older records): the replay must run and stop loudly."""
    lost = PartitionBacklog(0, 0, 20, 20, 5_000)
    assert lost.went_backwards and lost.missing == 0
    backlog = _topic(lost)
    assert not backlog.nothing_to_ingest
    assert "lost data" in backlog.line()


def test_an_empty_topic_has_nothing_to_ingest() -> None:
    assert _topic(PartitionBacklog(0, 0, 0, 0, None)).nothing_to_ingest
