"""The built-in Spark Kafka source (`format("kafka")`), for clusters with the connector.

Select it with `ECOM_KAFKA_SOURCE=native`. Spark then needs the connector package matching
its Scala/Spark version on the classpath, which `ingestion.spark` requests through
`spark.jars.packages` (downloaded from Maven Central on first use, or from your mirror):

    ECOM_KAFKA_SOURCE=native ecom ingest stream
    # equivalent to: spark-submit --packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark>

Everything downstream (validation, the exactly-once sink, windows) is the same: the native
columns are projected onto the `ecom_kafka` schema (key as a string). The native source keeps
its offsets in the checkpoint too and needs no consumer group. It is not exercised by the test
suite (no connector jar offline); `kafka_options` is unit-tested.

Security (`ECOM_KAFKA_SECURITY_PROTOCOL` ...) becomes `kafka.`-prefixed options, except the
SASL credentials: they go into a JAAS file (mode 600, `<data dir>/run/kafka-client.jaas`)
that the driver and executor JVMs load with `-Djava.security.auth.login.config`, so no
password is ever a source option. On a cluster the data dir is shared (it must be anyway:
checkpoints), so the executors find the file at the same path.
"""

from __future__ import annotations

import json
from typing import Any

from ecom.config import Settings
from ecom.kafka_security import KafkaSecurity, write_jaas_file

NATIVE_COLUMNS = (
    "topic", "partition", "offset", "timestamp", "cast(key as string) as key", "value",
)


def connector_package(spark_version: str) -> str:
    """Maven coordinates of the connector for a Spark version (Scala 2.13 builds)."""
    return f"org.apache.spark:spark-sql-kafka-0-10_2.13:{spark_version}"


def spark_packages(settings: Settings) -> str | None:
    if settings.kafka_source != "native":
        return None
    import pyspark

    return connector_package(pyspark.__version__)


def kafka_options(
    settings: Settings, topic: str, *, starting: dict[str, int] | str = "earliest",
    ending: dict[str, int] | str | None = None, streaming: bool = True,
) -> dict[str, str]:
    """Options of `format("kafka")` equivalent to the `ecom_kafka` options we use."""

    def offsets(value: dict[str, int] | str) -> str:
        if isinstance(value, str):
            return value
        return json.dumps({topic: {str(p): int(o) for p, o in value.items()}})

    opts = {
        **KafkaSecurity.of(settings).spark_native(),
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        "subscribe": topic,
        "startingOffsets": offsets(starting),
        "failOnDataLoss": "true",
        "includeHeaders": "false",
    }
    if streaming and settings.max_rows_per_batch > 0:
        opts["maxOffsetsPerTrigger"] = str(settings.max_rows_per_batch)
    if not streaming and ending is not None:
        opts["endingOffsets"] = offsets(ending)
    return opts


def jvm_login_options(settings: Settings) -> list[str]:
    """JVM options that give the connector its SASL login (none without SASL)."""
    security = KafkaSecurity.of(settings)
    if settings.kafka_source != "native" or not security.sasl:
        return []
    return [f"-Djava.security.auth.login.config={write_jaas_file(security, settings.run_dir)}"]


def read_stream(spark: Any, settings: Settings, topic: str) -> Any:
    reader = spark.readStream.format("kafka")
    for key, value in kafka_options(settings, topic).items():
        reader = reader.option(key, value)
    return reader.load().selectExpr(*NATIVE_COLUMNS)


def read_batch(spark: Any, settings: Settings, topic: str, starting: dict[str, int] | str,
               ending: dict[str, int] | str) -> Any:
    reader = spark.read.format("kafka")
    opts = kafka_options(settings, topic, starting=starting, ending=ending, streaming=False)
    for key, value in opts.items():
        reader = reader.option(key, value)
    return reader.load().selectExpr(*NATIVE_COLUMNS)
