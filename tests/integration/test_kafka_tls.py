"""Kafka over TLS, live: every client of the project talks SSL to a real broker.

The embedded broker (tansu 0.6.0) cannot serve TLS itself (its `--cert` and `--key` options
exclude each other), so this test puts a TLS terminator in front of a private tansu: the
broker listens on a plain port and advertises the terminator's port, so every connection a
client makes (bootstrap and the broker it is sent to) is a real TLS session, verified
against the stack's CA with the host name checked. Through it: the topic admin
(kafka-python), both producers (`produce_json` with confluent-kafka and kafka-python), the
Spark Python source's readers for both clients, built the way executors build them (public
options + the environment), and a client without the CA, refused. SASL cannot be tested
live at all (see README, "Security").
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import create_topic, ensure_topics
from ecom.kafka_clients import produce_json
from ecom.kafka_security import SOURCE_OPTION, KafkaSecurity
from ecom.ports import free_port, terminate
from ecom.stack import broker, tls
from ingestion.kafka_client import make_client
from ingestion.kafka_source import source_options

pytestmark = pytest.mark.integration


class TlsTerminator:
    """Accepts TLS on `port` and relays the plain bytes to `upstream` (like stunnel)."""

    def __init__(self, port: int, upstream: int, cert: Path, key: Path) -> None:
        self.port, self.upstream = port, upstream
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.handshakes = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(
            self._handle, "127.0.0.1", self.port, ssl=self.context))
        self._ready.set()
        self.loop.run_forever()
        server.close()

    def __enter__(self) -> TlsTerminator:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@dataclass
class TlsKafka:
    settings: Settings
    terminator: TlsTerminator


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """Settings whose Kafka is a private tansu reachable only over TLS."""
    work = tmp_path_factory.mktemp("kafka-tls")
    ca = tls.ensure_ca(work / "tls")
    cert, key = work / "tls" / "kafka.crt", work / "tls" / "kafka.key"
    tls.ensure_server_certificate(ca, cert, key, "127.0.0.1")
    plain, secure = free_port(), free_port()
    log = open(work / "tansu.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [broker.binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{secure}",
         "--storage-engine", "memory://tansu/", "--cluster-id", "ecom-tls"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    log.close()
    settings = Settings(data_dir=work, kafka_mode="external",
                        kafka_bootstrap_servers=f"127.0.0.1:{secure}",
                        kafka_security_protocol="SSL", kafka_ssl_cafile=str(ca.cert_path))
    try:
        with TlsTerminator(secure, plain, cert, key) as terminator:
            yield TlsKafka(settings, terminator)
    finally:
        terminate(proc.pid)


def _messages(settings: Settings, client: str, topic: str) -> list[dict[str, object]]:
    """Read a topic back as the Spark source's executors do: options + environment."""
    options = source_options(settings.replace(kafka_client=client))
    reader = make_client(options["bootstrap"], options["client"],
                         KafkaSecurity.from_options(options[SOURCE_OPTION], {}))
    try:
        partitions = reader.partitions(topic)
        ends = reader.log_ends(topic, partitions)
        out = []
        for p in partitions:
            for batch in reader.read_range(topic, p, 0, ends[p]):
                out += [json.loads(v) for v in batch.column("value").to_pylist()]
        return out
    finally:
        reader.close()


def test_every_client_talks_tls_to_the_broker(tls_kafka: TlsKafka) -> None:
    settings = tls_kafka.settings
    topics = ensure_topics(settings)  # kafka-python's admin over TLS
    assert [t.partitions for t in topics] == [3, 3, 1, 1]
    topic = create_topic(settings, f"tls-{uuid.uuid4().hex[:8]}", 2)
    sent = []
    for client in ("confluent", "kafka-python"):
        messages = [(f"user-{i}", {"client": client, "n": i}) for i in range(20)]
        assert produce_json(settings.replace(kafka_client=client), topic, messages) == 20
        sent += [value for _, value in messages]
    for client in ("confluent", "kafka-python"):
        received = _messages(settings, client, topic)
        key = lambda m: (m["client"], m["n"])  # noqa: E731
        assert sorted(received, key=key) == sorted(sent, key=key), client
    assert tls_kafka.terminator.handshakes >= 6


def test_a_client_without_the_ca_is_refused(tls_kafka: TlsKafka) -> None:
    settings = tls_kafka.settings
    untrusting = settings.replace(kafka_ssl_cafile=str(
        tls.ensure_ca(settings.data_dir / "other-ca").cert_path))
    with pytest.raises(UserError):
        produce_json(untrusting, "data-quality-alerts", [("k", {"v": 1})], timeout_s=3)
    plain = settings.replace(kafka_security_protocol="PLAINTEXT")
    with pytest.raises(UserError):
        produce_json(plain, "data-quality-alerts", [("k", {"v": 1})], timeout_s=3)
