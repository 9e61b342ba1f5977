"""`ecom simulate` into the real broker: everything sent is read back and matches the manifest."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from ecom.config import REPO_ROOT, Settings
from ecom.events import RejectReason
from ecom.kafka_admin import admin_client, create_topic, topic_partitions
from ingestion.validation import Reject, validate
from simulator.manifest import Manifest, load_manifest
from tests.conftest import ECOM, run_ecom

pytestmark = pytest.mark.integration

SIM_ARGS = ("--days", "2", "--events-per-day", "1500", "--end-date", "2026-03-01",
            "--seed", "21", "--bad-rate", "0.05", "--late-rate", "0.1", "--users", "400",
            "--products", "150", "--no-progress")


def _new_topic(settings: Settings, partitions: int = 3) -> str:
    return create_topic(settings, f"sim-test-{uuid.uuid4().hex[:8]}", partitions)


def _consume_all(settings: Settings, topic: str, expected: int,
                 timeout_s: float = 60.0) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every record, by manual assignment up to the high-water
    marks the fetches report (no consumer group)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": "sim-test-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[tuple[int, bytes, bytes]] = []
        at_eof: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error():
                    assert msg.error().code() == -191, msg.error()  # _PARTITION_EOF
                    at_eof.add(msg.partition())
                    continue
                at_eof.discard(msg.partition())
                records.append((msg.partition(), msg.key(), msg.value()))
            if len(records) >= expected and at_eof == set(partitions):
                break
        for p in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            assert sum(1 for rec in records if rec[0] == p) == high
        return records
    finally:
        consumer.close()


def _check_against_manifest(records: list[tuple[int, bytes, bytes]], manifest: Manifest) -> None:
    assert manifest.status == "complete" and manifest.messages_failed == 0
    assert len(records) == manifest.messages_acknowledged
    now_ms = int(time.time() * 1000)
    landed: dict[str, bytes] = {}
    by_type: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    partition_of_user: dict[bytes, int] = {}
    for partition, key, value in records:
        assert partition_of_user.setdefault(key, partition) == partition, "keyed by user"
        result = validate(value, now_ms)
        if isinstance(result, Reject):
            rejected[result.reason.value] += 1
        elif result.event_id in landed:
            assert landed[result.event_id] == value  # an exact re-send
            rejected[RejectReason.DUPLICATE_EVENT_ID.value] += 1
        else:
            assert key == result.user_id.encode()
            landed[result.event_id] = value
            by_type[result.event_type] += 1
    assert sorted(landed) == manifest.event_ids()
    assert dict(by_type) == {k: v for k, v in manifest.events_by_type.items() if v}
    assert dict(rejected) == {k: v for k, v in manifest.rejected_by_reason.items() if v}
    assert manifest.duplicates_resent == rejected["duplicate_event_id"] > 0


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_backfill_into_kafka_reads_back_exactly(stack: Settings, tmp_path: Path,
                                                client: str) -> None:
    topic = _new_topic(stack)
    manifest_path = tmp_path / f"{client}.json"
    run_ecom(stack, "simulate", "backfill", *SIM_ARGS, "--client", client, "--topic", topic,
             "--manifest", str(manifest_path))
    manifest = load_manifest(manifest_path)
    assert manifest.sink == {"kind": "kafka", "client": client, "topic": topic,
                             "bootstrap": stack.kafka_bootstrap_servers,
                             "compression": "lz4" if client == "confluent" else "gzip"}
    records = _consume_all(stack, topic, manifest.messages_acknowledged)
    _check_against_manifest(records, manifest)

    # the same seed to a file gives the same messages: the stream does not depend on the sink
    out = tmp_path / "same.jsonl"
    run_ecom(stack, "simulate", "backfill", *SIM_ARGS, "--output", str(out),
             "--manifest", str(tmp_path / "file.json"))
    assert Counter(v for _, _, v in records) == Counter(out.read_bytes().splitlines())
    assert load_manifest(tmp_path / "file.json").stream_sha256 == manifest.stream_sha256


def test_live_burst_into_kafka_reads_back_exactly(stack: Settings, tmp_path: Path) -> None:
    topic = _new_topic(stack)
    manifest_path = tmp_path / "live.json"
    run_ecom(stack, "simulate", "live", "--rate", "1500", "--duration", "2", "--seed", "5",
             "--bad-rate", "0.05", "--late-rate", "0.1", "--topic", topic, "--manifest",
             str(manifest_path), "--no-progress")
    manifest = load_manifest(manifest_path)
    assert manifest.mode == "live" and manifest.late_events > 0
    _check_against_manifest(_consume_all(stack, topic, manifest.messages_acknowledged), manifest)


def test_missing_topic_is_a_clear_error_and_is_not_auto_created(stack: Settings,
                                                                tmp_path: Path) -> None:
    topic = f"sim-missing-{uuid.uuid4().hex[:8]}"
    proc = run_ecom(stack, "simulate", "backfill", "--days", "1", "--events-per-day", "10",
                    "--topic", topic, "--no-progress", check=False)
    assert proc.returncode == 2
    assert f"Topic {topic} does not exist" in proc.stderr and "Traceback" not in proc.stderr
    admin = admin_client(stack)
    try:
        assert topic not in topic_partitions(admin, [topic])
    finally:
        admin.close()


def test_unreachable_broker_is_a_clear_error(stack: Settings) -> None:
    from ecom.ports import free_port

    nowhere = stack.replace(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    proc = run_ecom(nowhere, "simulate", "live", "--rate", "10", "--duration", "1",
                    "--no-progress", check=False, timeout=120)
    assert proc.returncode == 2
    assert "Cannot reach Kafka" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_broker_dying_mid_run_fails_loudly_with_a_truthful_manifest(
        stack: Settings, tmp_path: Path) -> None:
    """A private broker is stopped while a long backfill produces: the run stops, exits 2
    with one clear sentence, and its manifest says failed and counts only acknowledged."""
    from ecom.ports import free_port
    from ecom.stack import broker

    doomed = stack.replace(data_dir=tmp_path / "doomed",
                     kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    broker.start(doomed)
    try:
        topic = _new_topic(doomed)
        manifest_path = tmp_path / "doomed.json"
        proc = subprocess.Popen(
            [*ECOM, "simulate", "backfill", "--days", "30", "--events-per-day", "200000",
             "--end-date", "2026-03-01", "--seed", "4", "--topic", topic, "--manifest",
             str(manifest_path), "--no-progress"],
            cwd=REPO_ROOT, env=doomed.subprocess_env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        consumer = Consumer({"bootstrap.servers": doomed.kafka_bootstrap_servers,
                             "group.id": "sim-doomed"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
            if high > 10_000:
                break
            time.sleep(0.2)
        consumer.close()
    finally:
        broker.stop(doomed)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert "not acknowledged" in stderr or "Stopped early" in stderr
    manifest = load_manifest(manifest_path)
    assert manifest.status == "failed"
    assert 0 < manifest.messages_acknowledged < 30 * 150_000
    assert manifest.valid_events == len(manifest.event_ids())
