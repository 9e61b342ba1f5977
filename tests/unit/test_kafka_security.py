"""Kafka security settings reach every client the project has, and no secret reaches Spark.

Each mapping is checked against the client library itself: librdkafka validates its
properties when a client is constructed, kafka-python lists the keyword arguments it
accepts, and Spark's connector takes the `kafka.`-prefixed names of kafka-clients.
(Live over TLS: tests/integration/test_kafka_tls.py; SASL cannot be tested live on the
embedded broker, see README, "Security".)
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_clients import confluent_config, kafka_python_config
from ecom.kafka_security import SECRET_ENV, SOURCE_OPTION, KafkaSecurity, write_jaas_file
from ecom.stack.tls import ensure_ca
from ingestion.kafka_client import ConfluentClient, KafkaPythonClient, make_client
from ingestion.kafka_source import source_options
from ingestion.native import jvm_login_options, kafka_options

PASSWORD = "kafka-pw-'\"\\-Zq9"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    return str(ensure_ca(tmp_path / "tls").cert_path)


def _settings(tmp_path: Path, protocol: str, mechanism: str = "SCRAM-SHA-512",
              ca: str = "", **extra: object) -> Settings:
    return Settings(data_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:1",
                    kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism,
                    kafka_sasl_username="ecom-app", kafka_sasl_password=PASSWORD,
                    kafka_ssl_cafile=ca, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_gets_protocol_mechanism_credentials_and_ca(
        tmp_path: Path, ca_file: str, protocol: str, mechanism: str) -> None:
    conf = confluent_config(_settings(tmp_path, protocol, mechanism, ca_file), "probe")
    assert conf["security.protocol"] == protocol.lower()
    sasl = protocol.startswith("SASL")
    assert (conf.get("sasl.mechanism"), conf.get("sasl.username"), conf.get("sasl.password")) \
        == ((mechanism, "ecom-app", PASSWORD) if sasl else (None, None, None))
    tls = protocol.endswith("SSL")
    assert conf.get("ssl.ca.location") == (ca_file if tls else None)
    assert conf.get("ssl.endpoint.identification.algorithm") == ("https" if tls else None)
    # librdkafka accepts every property (it raises on an unknown or invalid one)
    quiet = {"log_level": 0}  # nothing listens on port 1: no connection noise
    Producer({**conf, **quiet}).flush(0)
    consumer_conf = {k: v for k, v in conf.items() if k != "acks"}
    Consumer({**consumer_conf, **quiet, "group.id": "probe"}).close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_gets_the_same_and_knows_every_keyword(
        tmp_path: Path, ca_file: str, protocol: str, mechanism: str) -> None:
    conf = kafka_python_config(_settings(tmp_path, protocol, mechanism, ca_file), "probe")
    assert conf["security_protocol"] == protocol
    if protocol.startswith("SASL"):
        assert (conf["sasl_mechanism"], conf["sasl_plain_username"],
                conf["sasl_plain_password"]) == (mechanism, "ecom-app", PASSWORD)
    else:
        assert "sasl_plain_password" not in conf
    if protocol.endswith("SSL"):
        assert conf["ssl_cafile"] == ca_file and conf["ssl_check_hostname"] is True
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(conf) <= set(client.DEFAULT_CONFIG), client


def test_mutual_tls_files_and_hostname_check(tmp_path: Path, ca_file: str) -> None:
    combined = tmp_path / "client.pem"
    combined.write_text("-----BEGIN PRIVATE KEY-----\n")
    settings = _settings(tmp_path, "SSL", ca=ca_file, kafka_ssl_certfile=str(combined),
                         kafka_ssl_keyfile=str(combined), kafka_ssl_check_hostname=False)
    security = KafkaSecurity.of(settings)
    assert security.confluent()["ssl.certificate.location"] == str(combined)
    assert security.confluent()["ssl.endpoint.identification.algorithm"] == "none"
    assert security.kafka_python()["ssl_keyfile"] == str(combined)
    assert security.kafka_python()["ssl_check_hostname"] is False
    native = security.spark_native()
    assert native["kafka.ssl.keystore.type"] == "PEM"
    assert native["kafka.ssl.keystore.location"] == str(combined)
    assert native["kafka.ssl.truststore.location"] == ca_file
    assert native["kafka.ssl.endpoint.identification.algorithm"] == ""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_native_connector_options_carry_no_secret(tmp_path: Path, ca_file: str,
                                                  protocol: str) -> None:
    settings = _settings(tmp_path, protocol, "SCRAM-SHA-256", ca_file, kafka_source="native")
    opts = kafka_options(settings, "events")
    assert opts["kafka.security.protocol"] == protocol
    assert opts["kafka.bootstrap.servers"] == "127.0.0.1:1"
    assert all(key.startswith("kafka.") or key[0].islower() for key in opts)
    assert PASSWORD not in json.dumps(opts) and "kafka.sasl.jaas.config" not in opts
    if protocol.endswith("SSL"):
        assert opts["kafka.ssl.truststore.type"] == "PEM"
        assert opts["kafka.ssl.truststore.location"] == ca_file
    login = jvm_login_options(settings)
    if not protocol.startswith("SASL"):
        assert login == []
        return
    assert opts["kafka.sasl.mechanism"] == "SCRAM-SHA-256"
    (option,) = login
    jaas = Path(option.split("=", 1)[1])
    assert stat.S_IMODE(jaas.stat().st_mode) == 0o600
    text = jaas.read_text()
    assert "org.apache.kafka.common.security.scram.ScramLoginModule required" in text
    assert 'password="kafka-pw-\'\\"\\\\-Zq9";' in text  # quotes and backslashes escaped


def test_native_connector_refuses_what_it_could_only_take_as_an_option(
        tmp_path: Path, ca_file: str) -> None:
    settings = _settings(tmp_path, "SSL", ca=ca_file, kafka_ssl_certfile=ca_file,
                         kafka_ssl_keyfile=ca_file, kafka_ssl_key_password="secret")
    with pytest.raises(UserError, match="one unencrypted PEM file"):
        KafkaSecurity.of(settings).spark_native()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_python_source_options_carry_no_secret_and_executors_rebuild_from_env(
        tmp_path: Path, ca_file: str, protocol: str) -> None:
    settings = _settings(tmp_path, protocol, "PLAIN", ca_file, kafka_client="kafka-python")
    options = source_options(settings)
    assert PASSWORD not in json.dumps(options)
    env = KafkaSecurity.of(settings).secret_env()
    assert env == {SECRET_ENV["password"]: PASSWORD}
    rebuilt = KafkaSecurity.from_options(options[SOURCE_OPTION], env)
    assert rebuilt == KafkaSecurity.of(settings)
    client = make_client(options["bootstrap"], options["client"], rebuilt)
    assert isinstance(client, KafkaPythonClient)
    assert client.security.kafka_python() == KafkaSecurity.of(settings).kafka_python()
    if protocol.startswith("SASL"):
        with pytest.raises(UserError, match="no ECOM_KAFKA_SASL_PASSWORD"):
            KafkaSecurity.from_options(options[SOURCE_OPTION], {})


def test_the_spark_source_reader_uses_the_security(tmp_path: Path, ca_file: str) -> None:
    security = KafkaSecurity.of(_settings(tmp_path, "SASL_SSL", ca=ca_file))
    client = ConfluentClient("127.0.0.1:1", security)
    consumer = client._consumer()  # librdkafka validates the whole configuration
    consumer.close()
    assert client.security.confluent()["sasl.password"] == PASSWORD


def test_incomplete_security_is_one_sentence(tmp_path: Path) -> None:
    no_user = Settings(data_dir=tmp_path, kafka_security_protocol="SASL_SSL")
    with pytest.raises(UserError, match="needs ECOM_KAFKA_SASL_USERNAME"):
        KafkaSecurity.of(no_user)
    half_tls = Settings(data_dir=tmp_path, kafka_security_protocol="SSL",
                        kafka_ssl_certfile="/x.pem")
    with pytest.raises(UserError, match="set both ECOM_KAFKA_SSL_CERTFILE"):
        KafkaSecurity.of(half_tls)
    missing = Settings(data_dir=tmp_path, kafka_security_protocol="SSL",
                       kafka_ssl_cafile=str(tmp_path / "nope.pem"))
    with pytest.raises(UserError, match=r"ECOM_KAFKA_SSL_CAFILE=.* is not a readable file"):
        KafkaSecurity.of(missing)


def test_kafka_secrets_are_hidden_like_the_database_passwords(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "SASL_SSL", kafka_ssl_key_password="key-pw-Zq9")
    for text in (repr(settings), str(settings), repr(KafkaSecurity.of(settings))):
        assert PASSWORD not in text and "key-pw-Zq9" not in text
    hidden = settings.as_env(secrets=False)
    assert "ECOM_KAFKA_SASL_PASSWORD" not in hidden
    assert "ECOM_KAFKA_SSL_KEY_PASSWORD" not in hidden
    assert settings.as_env()["ECOM_KAFKA_SASL_PASSWORD"] == PASSWORD


def test_jaas_file_is_rewritten_private(tmp_path: Path) -> None:
    security = KafkaSecurity(protocol="SASL_PLAINTEXT", mechanism="PLAIN", username="u",
                             password="p1")
    first = write_jaas_file(security, tmp_path)
    first.chmod(0o644)
    again = write_jaas_file(security, tmp_path)
    assert again == first and stat.S_IMODE(again.stat().st_mode) == 0o600
    assert "PlainLoginModule required" in again.read_text()
