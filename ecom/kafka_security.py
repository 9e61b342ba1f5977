"""How every Kafka client of the project authenticates and encrypts: one mapping per client.

`ECOM_KAFKA_SECURITY_PROTOCOL` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), the SASL
mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and credentials, and the TLS files are read
once into a `KafkaSecurity`, which renders them for each client the project has:

- `confluent()`: librdkafka properties (the producers, the Spark Python source's default
  reader);
- `kafka_python()`: kafka-python keyword arguments (producers, consumers, the topic admin);
- `spark_native()`: the `kafka.`-prefixed options of Spark's built-in connector.

Secrets never travel as Spark options (Spark shows source options in plans and logs):
the Python source gets `public_options()` only and its executors read the password from
the environment (`SECRET_ENV`: the driver exports it, and sets `spark.executorEnv.*` for a
cluster; Spark redacts those values in its UI and event logs). The native connector gets
no `sasl.jaas.config` option: the credentials go into a JAAS file (mode 600, under the
data dir) that the JVMs load through `-Djava.security.auth.login.config`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecom.config import Settings
from ecom.errors import UserError

#: environment variables that carry the Kafka secrets to Spark's executors
SECRET_ENV = {"password": "ECOM_KAFKA_SASL_PASSWORD",
              "key_password": "ECOM_KAFKA_SSL_KEY_PASSWORD"}
#: the option of the Python source that carries `public_options()` (JSON)
SOURCE_OPTION = "security"

_JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""
    key_password: str = field(default="", repr=False)
    check_hostname: bool = True

    @classmethod
    def of(cls, settings: Settings) -> KafkaSecurity:
        security = cls(
            protocol=settings.kafka_security_protocol,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            key_password=settings.kafka_ssl_key_password.get_secret_value(),
            check_hostname=settings.kafka_ssl_check_hostname,
        )
        security.check()
        return security

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in {"SSL", "SASL_SSL"}

    def check(self) -> None:
        """One sentence for a configuration no client could use."""
        if self.sasl and not (self.username and self.password):
            raise UserError(
                f"ECOM_KAFKA_SECURITY_PROTOCOL={self.protocol} needs ECOM_KAFKA_SASL_USERNAME and "
                "ECOM_KAFKA_SASL_PASSWORD (set them in the environment or .env).")
        if bool(self.certfile) != bool(self.keyfile):
            raise UserError(
                "A client certificate needs its key and a key its certificate: set both "
                "ECOM_KAFKA_SSL_CERTFILE and ECOM_KAFKA_SSL_KEYFILE, or neither.")
        for name, path in (("CAFILE", self.cafile), ("CERTFILE", self.certfile),
                           ("KEYFILE", self.keyfile)):
            if path and self.tls and not Path(path).is_file():
                raise UserError(f"ECOM_KAFKA_SSL_{name}={path} is not a readable file.")

    # ---- librdkafka (confluent-kafka) ---------------------------------------------------
    def confluent(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"security.protocol": self.protocol.lower()}
        if self.sasl:
            conf.update({"sasl.mechanism": self.mechanism, "sasl.username": self.username,
                         "sasl.password": self.password})
        if self.tls:
            conf["ssl.endpoint.identification.algorithm"] = \
                "https" if self.check_hostname else "none"
            if self.cafile:
                conf["ssl.ca.location"] = self.cafile
            if self.certfile:
                conf["ssl.certificate.location"] = self.certfile
                conf["ssl.key.location"] = self.keyfile
            if self.key_password:
                conf["ssl.key.password"] = self.key_password
        return conf

    # ---- kafka-python ---------------------------------------------------------------------
    def kafka_python(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            conf.update({"sasl_mechanism": self.mechanism,
                         "sasl_plain_username": self.username,
                         "sasl_plain_password": self.password})
        if self.tls:
            conf["ssl_check_hostname"] = self.check_hostname
            if self.cafile:
                conf["ssl_cafile"] = self.cafile
            if self.certfile:
                conf["ssl_certfile"] = self.certfile
                conf["ssl_keyfile"] = self.keyfile
            if self.key_password:
                conf["ssl_password"] = self.key_password
        return conf

    # ---- Spark's built-in connector (kafka-clients, Java) -------------------------------
    def spark_native(self) -> dict[str, str]:
        """`kafka.`-prefixed options; no secret (see `jaas_config` for the credentials)."""
        opts = {"kafka.security.protocol": self.protocol}
        if self.sasl:
            opts["kafka.sasl.mechanism"] = self.mechanism
        if self.tls:
            opts["kafka.ssl.endpoint.identification.algorithm"] = \
                "https" if self.check_hostname else ""
            if self.cafile:
                opts["kafka.ssl.truststore.type"] = "PEM"
                opts["kafka.ssl.truststore.location"] = self.cafile
            if self.certfile:
                # a PEM keystore is one file holding the key (PKCS#8) and its certificate;
                # its password would be an option (shown by Spark): unencrypted keys only
                if self.certfile != self.keyfile or self.key_password:
                    raise UserError(
                        "Spark's native Kafka connector reads the client key and certificate "
                        "from one unencrypted PEM file: set ECOM_KAFKA_SSL_CERTFILE and "
                        "ECOM_KAFKA_SSL_KEYFILE to that file (mode 600), and no key password.")
                opts["kafka.ssl.keystore.type"] = "PEM"
                opts["kafka.ssl.keystore.location"] = self.certfile
        return opts

    def jaas_config(self) -> str:
        """The JAAS `KafkaClient` section the connector's JVMs log in with (secret)."""
        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        return (f"KafkaClient {{\n  {_JAAS_MODULES[self.mechanism]} required\n"
                f"  username={quoted(self.username)}\n  password={quoted(self.password)};\n}};\n")

    # ---- the Spark Python source: public options + secrets from the environment --------
    def public_options(self) -> dict[str, str]:
        """Everything but the secrets, for Spark source options (safe to show in a plan)."""
        return {"protocol": self.protocol, "mechanism": self.mechanism,
                "username": self.username, "cafile": self.cafile, "certfile": self.certfile,
                "keyfile": self.keyfile, "check_hostname": "true" if self.check_hostname
                else "false"}

    def secret_env(self) -> dict[str, str]:
        """The secrets as `SECRET_ENV` variables (those that are set)."""
        values = {"password": self.password, "key_password": self.key_password}
        return {SECRET_ENV[k]: v for k, v in values.items() if v}

    @classmethod
    def from_options(cls, options: Mapping[str, str] | str | None,
                     environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        """Rebuild the security in an executor: public options plus the environment."""
        if not options:
            return cls()
        public = json.loads(options) if isinstance(options, str) else dict(options)
        env = os.environ if environ is None else environ
        security = cls(
            protocol=public.get("protocol", "PLAINTEXT"),
            mechanism=public.get("mechanism", "SCRAM-SHA-512"),
            username=public.get("username", ""),
            password=env.get(SECRET_ENV["password"], ""),
            cafile=public.get("cafile", ""), certfile=public.get("certfile", ""),
            keyfile=public.get("keyfile", ""),
            key_password=env.get(SECRET_ENV["key_password"], ""),
            check_hostname=public.get("check_hostname", "true") == "true",
        )
        if security.sasl and not security.password:
            raise UserError(
                f"The Kafka source runs with {security.protocol} but this Spark executor has no "
                f"{SECRET_ENV['password']} in its environment: export it where the executors "
                "start (the driver sets spark.executorEnv for a cluster).")
        return security


def write_jaas_file(security: KafkaSecurity, run_dir: Path) -> Path:
    """The connector's JAAS file (mode 600); the path goes into the JVM options."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "kafka-client.jaas"
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(security.jaas_config())
    tmp.replace(path)
    return path
