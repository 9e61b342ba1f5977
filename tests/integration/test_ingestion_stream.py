"""Spark ingestion against the real broker, Spark and PostgreSQL, fed by the simulator.

Each test module run uses its own topics and checkpoint directory on the shared private
stack, and simulated dates no other test uses, so counts can be compared exactly. The
scenario runs once per writer (`ECOM_SINK_WRITER`: the driver COPYs, or the executors
stage and the driver moves): both must land exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ecom.errors import UserError
from ecom.events import REQUIRED_FIELDS
from ecom.kafka_admin import admin_client
from ingestion.batch import replay
from ingestion.checkpoint import stream_paths
from ingestion.kafka_client import make_client
from ingestion.sink import OffsetsReusedError
from ingestion.stream import run_stream
from simulator.manifest import Manifest, load_manifest
from tests.conftest import ECOM, run_ecom

pytestmark = [pytest.mark.integration, pytest.mark.spark]

# Simulated days no other test uses (the simulator's "future" timestamps are relative to
# the simulated days, so they must be recent for future_timestamp to be in the future).
TODAY = datetime.now(UTC).date()
DAY = TODAY - timedelta(days=41)
CRASH_DAY = TODAY - timedelta(days=43)


def _day(d: date, offset: int = 0) -> str:
    return (d + timedelta(days=offset)).isoformat()


# ---- helpers --------------------------------------------------------------------------------

def _create_topics(settings: Settings, *names: str) -> None:
    from kafka.admin import NewTopic

    client = admin_client(settings)
    try:
        client.create_topics([NewTopic(n, settings.events_partitions, 1) for n in names])
    finally:
        client.close()


def _delete_topic(settings: Settings, name: str) -> None:
    client = admin_client(settings)
    try:
        client.delete_topics([name])
    finally:
        client.close()


def private_settings(stack: Settings, data_dir: Path, **changes: Any) -> Settings:
    """Own topics and checkpoints on the shared stack (passwords and the CA that verifies
    its PostgreSQL stay those of the stack)."""
    tag = uuid.uuid4().hex[:8]
    settings = stack.replace(data_dir=data_dir, topic_events=f"ing-events-{tag}",
                             topic_processed=f"ing-processed-{tag}", trigger_seconds=0.5,
                             pg_sslrootcert=stack.sslrootcert, **changes)
    _create_topics(settings, settings.topic_events, settings.topic_processed)
    return settings


def simulate(settings: Settings, manifest: Path, *, end_date: str, events: int, seed: int,
             bad_rate: float = 0.05, late_rate: float = 0.0) -> Manifest:
    run_ecom(settings, "simulate", "backfill", "--days", "1", "--events-per-day", str(events),
             "--end-date", end_date, "--seed", str(seed), "--bad-rate", str(bad_rate),
             "--late-rate", str(late_rate), "--manifest", str(manifest), "--no-progress")
    return load_manifest(manifest)


def query(settings: Settings, sql: str, *params: Any) -> list[tuple]:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def landed_ids(settings: Settings) -> list[str]:
    return [r[0] for r in query(settings, "select event_id::text from raw.raw_events "
                                "where kafka_topic = %s", settings.topic_events)]


def rejected_by_reason(settings: Settings) -> dict[str, int]:
    return dict(query(settings, "select reason_code, count(*) from raw.rejected_events "
                      "where kafka_topic = %s group by 1", settings.topic_events))


def assert_every_offset_once(settings: Settings, acknowledged: int) -> None:
    """Each offset of the topic is in exactly one of raw_events / rejected_events."""
    rows = query(settings, """
        select kafka_partition, kafka_offset from raw.raw_events where kafka_topic = %s
        union all
        select kafka_partition, kafka_offset from raw.rejected_events where kafka_topic = %s
    """, settings.topic_events, settings.topic_events)
    assert len(rows) == len(set(rows)) == acknowledged
    client = make_client(settings.kafka_bootstrap_servers)
    try:
        ends = client.log_ends(settings.topic_events, list(range(settings.events_partitions)))
    finally:
        client.close()
    expected = {(p, o) for p, end in ends.items() for o in range(end)}
    assert set(rows) == expected


def window_mismatches(settings: Settings, day_from: str, day_to: str
                      ) -> tuple[int, int, int, int]:
    """Over [day_from, day_to): (realtime rows, raw keys, keys differing, realtime rows whose
    numbers differ from the raw events of their window)."""
    rows = query(settings, """
        with raw_windows as (
            select date_bin('5 minutes', event_timestamp, timestamptz '1970-01-01') as w,
                   event_type, coalesce(category, '(none)') as c, count(*) as n,
                   coalesce(sum(price * quantity) filter (where event_type = 'purchase'), 0)
                       as revenue,
                   count(distinct user_id) as users, count(distinct session_id) as sessions
            from raw.raw_events
            where event_timestamp >= %s::timestamptz and event_timestamp < %s::timestamptz
            group by 1, 2, 3
        ), metrics as (
            select * from raw.realtime_metrics
            where window_start >= %s::timestamptz and window_start < %s::timestamptz
        )
        select
            (select count(*) from metrics),
            (select count(*) from raw_windows),
            (select count(*) from raw_windows r full join metrics m
                on m.window_start = r.w and m.event_type = r.event_type and m.category = r.c
             where m.events is distinct from r.n or m.revenue is distinct from r.revenue
                or m.unique_users is distinct from r.users
                or m.unique_sessions is distinct from r.sessions
                or m.window_end is distinct from r.w + interval '5 minutes'),
            (select count(*) from metrics m left join raw_windows r
                on m.window_start = r.w and m.event_type = r.event_type and m.category = r.c
             where m.events is distinct from r.n or m.revenue is distinct from r.revenue
                or m.unique_users is distinct from r.users
                or m.unique_sessions is distinct from r.sessions)
    """, day_from, day_to, day_from, day_to)
    return rows[0]


def consume_values(settings: Settings, topic: str) -> list[bytes]:
    client = make_client(settings.kafka_bootstrap_servers)
    try:
        ends = client.log_ends(topic, list(range(settings.events_partitions)))
    finally:
        client.close()
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(values) < sum(ends.values()) and time.monotonic() < deadline:
        values.extend(m.value() for m in consumer.consume(10_000, timeout=0.5)
                      if m.error() is None)
    consumer.close()
    return values


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spark(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from ingestion.spark import build_session

    session = build_session(stack.replace(data_dir=tmp_path_factory.mktemp("spark")),
                            "ecom-ingest-tests")
    yield session
    session.stop()


WRITERS = ("driver", "executors")
#: the simulated day of each writer's scenario (realtime windows are not per topic)
_DAYS: dict[str, date] = {}


def day_of(settings: Settings) -> date:
    return _DAYS[settings.topic_events]


@pytest.fixture(scope="module", params=WRITERS)
def ingested(stack: Settings, spark: Any, tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> tuple[Settings, Manifest]:
    """A simulated day with every bad class, drained by `ingest stream --available-now`
    (once per writer, each into its own topics and on its own day)."""
    data_dir = tmp_path_factory.mktemp("ingest")
    settings = private_settings(stack, data_dir, sink_writer=request.param)
    day = DAY - timedelta(days=WRITERS.index(request.param) * 10)
    _DAYS[settings.topic_events] = day
    manifest = simulate(settings, data_dir / "run.json", end_date=_day(day), events=12_000,
                        seed=101 + WRITERS.index(request.param), bad_rate=0.06)
    assert manifest.bad_events_by_class["duplicate_event_id"] > 0
    # small batches: several micro-batches, duplicates across batches
    run_stream(settings, available_now=True, max_rows=4_000, spark=spark, log=print)
    return settings, manifest


# ---- tests ----------------------------------------------------------------------------------

def test_raw_events_are_exactly_the_manifests_valid_events(ingested: tuple) -> None:
    settings, manifest = ingested
    ids = landed_ids(settings)
    assert len(ids) == len(set(ids)) == manifest.valid_events
    assert sorted(ids) == manifest.event_ids()


def test_rejected_events_match_the_bad_classes(ingested: tuple) -> None:
    settings, manifest = ingested
    expected = {reason: n for reason, n in manifest.rejected_by_reason.items() if n}
    assert rejected_by_reason(settings) == expected
    assert_every_offset_once(settings, manifest.messages_acknowledged)
    # dead letters keep the original text and coordinates
    rows = query(settings, "select raw_value, raw_size_bytes, reason_message, event_id "
                 "from raw.rejected_events where kafka_topic = %s and "
                 "reason_code = 'duplicate_event_id'", settings.topic_events)
    for raw_value, size, message, event_id in rows:
        assert json.loads(raw_value)["event_id"] == event_id
        assert size == len(raw_value.encode()) and "already" in message


def test_the_ledger_accounts_for_every_row(ingested: tuple) -> None:
    settings, manifest = ingested
    name = json.loads((settings.checkpoint_dir / "ingest" / "identity.json").read_text())
    (batches, read, valid, rejected, dups), = query(
        settings, "select count(*), sum(rows_read), sum(rows_valid), sum(rows_rejected), "
        "sum(rows_duplicate) from ops.ingest_batches where query_name = %s",
        name["query_name"])
    assert batches >= 3
    assert (read, valid, rejected) == (manifest.messages_acknowledged, manifest.valid_events,
                                       manifest.bad_events)
    assert dups == manifest.duplicates_resent


def test_realtime_windows_equal_the_raw_events_per_window(ingested: tuple) -> None:
    settings, manifest = ingested
    day = day_of(settings)
    metrics, raw_keys, differing, wrong = window_mismatches(settings, _day(day), _day(day, 1))
    assert metrics == raw_keys > 100
    assert differing == wrong == 0
    (events, revenue), = query(
        settings, "select sum(events), sum(revenue) from raw.realtime_metrics "
        "where window_start >= %s::date and window_start < %s::date", _day(day), _day(day, 1))
    assert events == manifest.valid_events
    assert str(revenue) == manifest.revenue_total


def test_processed_events_carry_every_valid_event_cleaned(ingested: tuple) -> None:
    settings, manifest = ingested
    values = [json.loads(v) for v in consume_values(settings, settings.topic_processed)]
    assert {v["event_id"] for v in values} == set(manifest.event_ids())
    contract = {"event_id", "user_id", "session_id", "event_type", "event_timestamp",
                "product_id", "category", "price", "quantity", "page_url", "user_agent",
                "ip_address"}
    for value in values:
        assert set(value) <= contract and set(REQUIRED_FIELDS) <= set(value)
        assert len(value["event_timestamp"]) == 24 and value["event_timestamp"].endswith("Z")


def test_batch_replay_over_the_whole_topic_adds_nothing(ingested: tuple, spark: Any) -> None:
    settings, manifest = ingested
    stats = replay(settings, spark, "earliest", "latest", max_rows=5_000, log=print)
    assert (stats.valid, stats.rejected) == (0, 0)
    assert stats.settled == stats.rows == manifest.messages_acknowledged
    assert len(landed_ids(settings)) == manifest.valid_events
    assert sum(rejected_by_reason(settings).values()) == manifest.bad_events


def test_the_replay_command_shows_its_lines_and_keeps_sparks_in_a_file(ingested: tuple
                                                                      ) -> None:
    """What a user watches: the project's progress lines; Spark's own console output (the
    JVM's, log4j's WARN lines) in `<data dir>/logs/spark-<app>.log`."""
    from ingestion.backlog import topic_backlog
    from ingestion.spark import spark_log_file

    settings, manifest = ingested
    assert topic_backlog(settings).nothing_to_ingest  # what lets the DAG skip Spark
    proc = run_ecom(settings, "ingest", "batch")
    shown = proc.stdout + proc.stderr
    assert "replay done" in shown and f"{manifest.messages_acknowledged:,} rows read" in shown
    for spark_said in ("WARN", "log4j", "incubator", "native-hadoop", "setLogLevel"):
        assert spark_said not in shown, spark_said
    log_text = spark_log_file(settings, "ecom-ingest-replay").read_text()
    assert "log4j" in log_text and "ecom-ingest-replay" in log_text


def test_replay_by_kafka_time_selects_nothing_in_the_future(ingested: tuple, spark: Any
                                                            ) -> None:
    settings, _ = ingested
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    stats = replay(settings, spark, later, "latest", log=print)
    assert stats.rows == 0


def test_both_kafka_clients_read_the_same_records(stack: Settings) -> None:
    settings = stack
    topic = f"ing-clients-{uuid.uuid4().hex[:8]}"
    _create_topics(settings, topic)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "compression.type": "none", "linger.ms": 5})
    for i in range(600):
        producer.produce(topic, f'{{"n": {i}}}'.encode(), f"k{i % 7}".encode())
    assert producer.flush(30) == 0
    seen = []
    for name in ("confluent", "kafka-python"):
        client = make_client(settings.kafka_bootstrap_servers, name)
        try:
            ends = client.log_ends(topic, client.partitions(topic))
            batches = list(client.read_range(topic, 1, 10, ends[1] - 5))
        finally:
            client.close()
        rows = [(o, k, v) for b in batches for o, k, v in zip(
            b.column("offset").to_pylist(), b.column("key").to_pylist(),
            b.column("value").to_pylist(), strict=True)]
        seen.append((ends, rows))
    assert seen[0] == seen[1]
    assert sum(seen[0][0].values()) == 600
    assert [o for o, _, _ in seen[0][1]] == list(range(10, seen[0][0][1] - 5))


def test_kafka_python_reads_lz4_topics(stack: Settings) -> None:
    """lz4 is a dependency (the events topic is lz4-compressed): both clients agree.

    Without it kafka-python raises UserError naming `pip install lz4` (`_codec_error`)."""
    settings = stack
    topic = f"ing-lz4-{uuid.uuid4().hex[:8]}"
    _create_topics(settings, topic)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "compression.type": "lz4"})
    for _ in range(50):
        producer.produce(topic, b'{"n": 1}', b"k")
    assert producer.flush(30) == 0
    reader = make_client(settings.kafka_bootstrap_servers, "confluent")
    ends = reader.log_ends(topic, reader.partitions(topic))
    reader.close()
    partition = max(ends, key=lambda p: ends[p])
    client = make_client(settings.kafka_bootstrap_servers, "kafka-python")
    try:
        assert client.log_ends(topic, client.partitions(topic)) == ends
        batches = list(client.read_range(topic, partition, 0, ends[partition]))
        assert sum(b.num_rows for b in batches) == ends[partition]
        assert {v for b in batches for v in b.column("value").to_pylist()} == {b'{"n": 1}'}
    finally:
        client.close()


def test_status_shows_no_lag_after_a_drain(ingested: tuple) -> None:
    settings, _ = ingested
    out = run_ecom(settings, "ingest", "status").stdout
    assert settings.topic_events in out and "raw.raw_events" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("│ ")]
    assert rows and all(line.split("│")[-2].strip() == "0" for line in rows[1:])


def _send(settings: Settings, *messages: tuple[bytes, bytes | None]) -> None:
    """Produce (value, key) messages to the events topic and wait for the acks.

    A helper's frame, not the test's: the test's frame outlives it (pytest keeps the
    traceback of its expected error), and a producer left in it logs connection errors
    at interpreter exit, after the session's broker stopped."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all"})
    for value, key in messages:
        producer.produce(settings.topic_events, value, key)
    assert producer.flush(30) == 0


def _produce(settings: Settings, events: list[dict]) -> None:
    _send(settings, *((json.dumps(event).encode(), event["user_id"].encode())
                      for event in events))


def _event(ts: str, **extra: Any) -> dict:
    return {"event_id": str(uuid.uuid4()), "user_id": "late-user", "session_id": "late-s",
            "event_type": "page_view", "event_timestamp": ts, "page_url": "https://x/",
            "user_agent": "UA", "ip_address": "10.0.0.1", **extra}


def test_late_events_land_but_leave_closed_windows_alone(ingested: tuple, spark: Any) -> None:
    settings, _ = ingested
    day = day_of(settings)
    late = _event(f"{_day(day, -2)}T12:01:00.000Z")  # before anything else: window closed
    on_time = _event(f"{_day(day)}T23:58:00.000Z")
    _produce(settings, [late, on_time])
    run_stream(settings, available_now=True, spark=spark, log=print)
    assert set(landed_ids(settings)) >= {late["event_id"], on_time["event_id"]}
    assert query(settings, "select count(*) from raw.realtime_metrics "
                 "where window_start = %s::timestamptz", f"{_day(day, -2)}T12:00:00Z") == [(0,)]
    metrics, raw_keys, differing, _ = window_mismatches(settings, _day(day), _day(day, 1))
    assert differing == 0 and metrics == raw_keys  # the on-time event updated its window


def test_broker_data_loss_stops_loudly(ingested: tuple, spark: Any) -> None:
    settings, _ = ingested
    before = len(landed_ids(settings))
    # the memory broker restarting = the topic coming back empty
    _delete_topic(settings, settings.topic_events)
    time.sleep(0.5)
    _create_topics(settings, settings.topic_events)
    with pytest.raises(UserError) as err:
        run_stream(settings, available_now=True, spark=spark, log=print)
    message = str(err.value)
    assert "Offsets went backwards" in message and "are gone" in message
    assert "--reset-checkpoint" in message
    assert len(landed_ids(settings)) == before  # nothing written
    # a new record at an offset already ingested: without a new epoch it is refused ...
    new = _event(f"{_day(day_of(settings))}T23:59:00.000Z")
    _produce(settings, [new])
    shutil.rmtree(stream_paths(settings).root)  # a bare checkpoint loss opens no epoch
    with pytest.raises(OffsetsReusedError, match="re-used offsets"):
        run_stream(settings, available_now=True, spark=spark, log=print)
    # ... --reset-checkpoint opens a new topic epoch: it lands once, next to the old rows
    epochs = query(settings, "select coalesce(max(kafka_epoch), 0) from ops.ingest_epochs "
                   "where kafka_topic = %s", settings.topic_events)[0][0]
    run_stream(settings, available_now=True, reset=True, spark=spark, log=print)
    ids = landed_ids(settings)
    assert len(ids) == before + 1 and new["event_id"] in ids
    assert query(settings, "select kafka_epoch from raw.raw_events where event_id = %s",
                 new["event_id"]) == [(epochs + 1,)]
    # an old event re-sent as it was is a duplicate_event_id dead letter, not a second row
    old_id = ids[0] if ids[0] != new["event_id"] else ids[1]
    (raw,) = query(settings, "select raw_data::text from raw.raw_events where event_id = %s",
                   old_id)[0]
    dups = rejected_by_reason(settings).get("duplicate_event_id", 0)
    _send(settings, (raw.encode(), None))
    run_stream(settings, available_now=True, spark=spark, log=print)
    assert len(landed_ids(settings)) == before + 1
    assert rejected_by_reason(settings).get("duplicate_event_id", 0) == dups + 1
    # the replay (Airflow's extract) lands into the same epoch: everything is settled
    stats = replay(settings, spark, log=print)
    assert (stats.valid, stats.rejected, stats.settled) == (0, 0, 2)


# ---- crash test ---------------------------------------------------------------------------

def _start_stream(settings: Settings, log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*ECOM, "ingest", "stream", "--max-rows-per-batch", "3000", *args], cwd=REPO_ROOT,
        env=settings.subprocess_env(), stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the JVM dies with the driver
    )


def _kill_hard(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _wait_for_rows(settings: Settings, at_least: int, proc: subprocess.Popen, log: Path,
                   timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = query(settings, "select count(*) from raw.raw_events where kafka_topic = %s",
                  settings.topic_events)[0][0]
        if n >= at_least:
            return n
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no progress to {at_least} rows:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("writer", WRITERS)
def test_kill_minus_nine_mid_stream_loses_and_doubles_nothing(stack: Settings, tmp_path: Path,
                                                              writer: str) -> None:
    settings = private_settings(stack, tmp_path, sink_writer=writer)
    crash_day = CRASH_DAY - timedelta(days=WRITERS.index(writer) * 10)
    manifest = simulate(settings, tmp_path / "crash.json", end_date=_day(crash_day),
                        events=30_000, seed=202 + WRITERS.index(writer), bad_rate=0.05)
    log = tmp_path / "stream.log"
    landed = 0
    for round_ in range(3):  # kill -9 the driver mid-stream three times
        proc = _start_stream(settings, log)
        try:
            landed = _wait_for_rows(settings, landed + 4_000, proc, log)
            time.sleep(0.3 * round_)  # vary where in a batch the kill lands
        finally:
            _kill_hard(proc)
    assert landed < manifest.valid_events, "the stream finished before the last kill"
    final = subprocess.run(
        [*ECOM, "ingest", "stream", "--available-now"], cwd=REPO_ROOT,
        env=settings.subprocess_env(), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stdout + final.stderr
    ids = landed_ids(settings)
    assert len(ids) == len(set(ids))  # 0 duplicated
    assert sorted(ids) == manifest.event_ids()  # 0 lost
    expected = {reason: n for reason, n in manifest.rejected_by_reason.items() if n}
    assert rejected_by_reason(settings) == expected  # rejected exact
    assert_every_offset_once(settings, manifest.messages_acknowledged)
    # windows closed while the stream was down may miss late-arriving keys (watermark);
    # every window row that exists must still equal its raw events exactly
    metrics, _, _, wrong = window_mismatches(settings, _day(crash_day), _day(crash_day, 1))
    assert metrics > 0 and wrong == 0
    # the staging tables the killed drivers left (executors writer) were dropped
    assert query(settings, "select count(*) from pg_tables where schemaname = "
                 "'ingest_staging' and tablename <> 'batch_template'") == [(0,)]
