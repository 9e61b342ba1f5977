"""The embedded stack: schema, role lanes, broker round trip, lifecycle and clear errors."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid

import psycopg2
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError
from ecom.kafka_admin import admin_client, ensure_topics
from ecom.ports import free_port, pid_alive
from ecom.stack import broker, postgres
from ecom.stack.manager import down, status_of, up
from tests.conftest import _private_settings, run_ecom

pytestmark = pytest.mark.integration


def _columns(settings: Settings, schema: str, table: str) -> set[str]:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s", (schema, table))
        return {r[0] for r in cur.fetchall()}


def test_landing_schema_has_every_event_field(stack: Settings) -> None:
    raw = _columns(stack, "raw", "raw_events")
    assert {
        "event_id", "user_id", "session_id", "event_type", "event_timestamp", "product_id",
        "category", "price", "quantity", "page_url", "user_agent", "ip_address", "raw_data",
        "kafka_topic", "kafka_partition", "kafka_offset", "ingested_at",
    } <= raw
    assert {"raw_value", "reason_code", "reason_message", "kafka_topic", "kafka_partition",
            "kafka_offset", "received_at"} <= _columns(stack, "raw", "rejected_events")
    assert {"window_start", "window_end", "event_type", "category", "events", "revenue",
            "unique_users", "unique_sessions"} <= _columns(stack, "raw", "realtime_metrics")
    assert _columns(stack, "ops", "data_quality_logs")
    assert _columns(stack, "ops", "pipeline_execution_logs")
    assert _columns(stack, "ops", "ingest_batches")


def test_migrations_are_recorded_and_idempotent(stack: Settings) -> None:
    with connect(stack) as conn, conn.cursor() as cur:
        cur.execute("select version from ops.schema_migrations order by version")
        before = [r[0] for r in cur.fetchall()]
    assert before[:4] == ["0001", "0002", "0003", "0004"]
    again, _ = up(stack)
    assert again.pg_port == stack.pg_port
    with connect(stack) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from ops.schema_migrations")
        assert cur.fetchone()[0] == len(before)


def _attempt(settings: Settings, role: str, statement: str) -> str | None:
    """Run one statement as `role`; return the SQLSTATE if refused, None if allowed."""
    conn = connect(settings, role)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
        conn.rollback()
        return None
    except psycopg2.Error as exc:
        conn.rollback()
        return exc.pgcode
    finally:
        conn.close()


INSERT_RAW = (
    "insert into raw.raw_events (event_id, user_id, session_id, event_type, event_timestamp, "
    "raw_data, kafka_topic, kafka_partition, kafka_offset) values "
    "(gen_random_uuid(), 'u', 's', 'page_view', now(), '{}', 't', 0, 0)"
)
DENIED = "42501"  # insufficient_privilege
READ_ONLY = "25006"  # read_only_sql_transaction


def test_roles_are_refused_outside_their_lane(stack: Settings) -> None:
    # created by transformer, as dbt does: default privileges make it readable by reader
    with connect(stack, "transformer") as conn, conn.cursor() as cur:
        cur.execute("create table if not exists analytics.lane_probe (x int)")
    # loader: writes raw and ops, nothing in analytics
    assert _attempt(stack, "loader", INSERT_RAW) is None
    assert _attempt(stack, "loader", "insert into ops.pipeline_execution_logs "
                    "(dag_id, run_id, task_id, status) values ('d','r','t','ok')") is None
    assert _attempt(stack, "loader", "select * from analytics.lane_probe") == DENIED
    assert _attempt(stack, "loader", "create table analytics.x (y int)") == DENIED
    # transformer: reads raw, owns analytics, cannot write raw
    assert _attempt(stack, "transformer", "select count(*) from raw.raw_events") is None
    assert _attempt(stack, "transformer", INSERT_RAW) == DENIED
    assert _attempt(stack, "transformer", "create table analytics.t_probe (y int)") is None
    # reader: analytics only
    assert _attempt(stack, "reader", "select * from analytics.lane_probe") is None
    assert _attempt(stack, "reader", "select count(*) from raw.raw_events") == DENIED
    # reader sessions are read-only (migration 0050): refused before the privilege check,
    # which tests/integration/test_security.py also proves refuses them
    assert _attempt(stack, "reader", "create table analytics.r_probe (y int)") == READ_ONLY
    assert _attempt(stack, "reader", "insert into analytics.lane_probe values (1)") == READ_ONLY


def test_broker_round_trip_by_key(stack: Settings) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    client = admin_client(stack)
    try:
        from kafka.admin import NewTopic

        client.create_topics([NewTopic(topic, 3, 1)])
    finally:
        client.close()
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers, acks="all")
    sent = {f"user-{i}": {"n": i} for i in range(30)}
    futures = [producer.send(topic, key=k.encode(), value=json.dumps(v).encode())
               for k, v in sent.items()]
    producer.flush()
    partitions_by_key = {k: f.get(timeout=10).partition for k, f in zip(sent, futures, strict=True)}
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap_servers,
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    received = {}
    for record in consumer:
        received[record.key.decode()] = (record.partition, json.loads(record.value))
        if len(received) == len(sent):
            break
    consumer.close()
    assert {k: v for k, (_, v) in received.items()} == sent
    assert {k: p for k, (p, _) in received.items()} == partitions_by_key


def test_status_shows_services_and_topics(stack: Settings) -> None:
    status = status_of(stack)
    assert status.postgres.startswith("running")
    assert status.kafka.startswith("running")
    assert status.topics == {"ecommerce-events": 3, "processed-events": 3,
                             "daily-aggregations": 1, "data-quality-alerts": 1}
    out = run_ecom(stack, "stack", "status").stdout
    assert "ecommerce-events" in out and "3 partition" in out
    assert [t.partitions for t in ensure_topics(stack)] == [3, 3, 1, 1]


def test_up_down_lifecycle_leaves_nothing_running(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings, _ = up(_private_settings(tmp_path_factory.mktemp("lifecycle")))
    try:
        pid = broker.running_pid(settings)
        assert pid and pid_alive(pid)
        assert postgres.is_running(settings)
        _, again = up(settings)  # safe to call twice
        assert "postgres already running" in again.notes
        assert sorted(down(settings)) == ["broker", "postgres"]
        assert not pid_alive(pid)
        assert not postgres.is_running(settings)
        assert down(settings) == []
    finally:
        down(settings)
        postgres.destroy(settings)


def test_wrong_password_is_one_clear_sentence(stack: Settings) -> None:
    bad = stack.replace(pg_loader_password="definitely-wrong")
    with pytest.raises(UserError, match=r"refused the loader login.*ECOM_PG_LOADER_PASSWORD"):
        connect(bad, "loader")
    unreachable = stack.replace(pg_port=free_port())
    with pytest.raises(UserError, match=r"Cannot reach PostgreSQL.*ecom stack up"):
        connect(unreachable)


def test_port_taken_is_one_clear_sentence(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = _private_settings(tmp_path_factory.mktemp("taken"))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", settings.pg_port))
        blocker.listen()
        result = run_ecom(settings, "stack", "up", check=False)
    try:
        assert result.returncode == 2
        assert f"Port {settings.pg_port} on 127.0.0.1 is already taken" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        postgres.destroy(settings)


def test_missing_binary_is_one_clear_sentence(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = _private_settings(tmp_path_factory.mktemp("nobin")).replace(
        pg_bin_dir="/nonexistent/bin")
    result = subprocess.run(
        [*__import__("tests.conftest", fromlist=["ECOM"]).ECOM, "stack", "up"],
        env=settings.subprocess_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "holds no executable initdb and pg_ctl" in result.stderr
    assert "Traceback" not in result.stderr
