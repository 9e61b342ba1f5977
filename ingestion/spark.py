"""The Spark session for ingestion: master and memory from Settings, small and quiet.

`local[*]` by default; point `ECOM_SPARK_MASTER` at a cluster (`spark://...`, `yarn`, `k8s://`)
and `ECOM_SPARK_DRIVER_MEMORY` at its size. The driver must be able to reach PostgreSQL:
it lands every micro-batch (see `ingestion.sink`). For the native Kafka source the connector
package is added with `spark.jars.packages` (see `ingestion.native`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ecom.config import Settings

#: Shuffle partitions: the only shuffle is the 5-minute window aggregation on small keys.
SHUFFLE_PARTITIONS = 2


def build_session(settings: Settings, app_name: str = "ecom-ingest", *, ui: bool = False,
                  extra_conf: dict[str, str] | None = None) -> Any:
    """Create (or reuse) the SparkSession with the project's Kafka source registered."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from ingestion.kafka_source import register
    from ingestion.native import spark_packages

    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
        .config("spark.default.parallelism", str(SHUFFLE_PARTITIONS))
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.streaming.metricsEnabled", "false")
        .config("spark.local.dir", str(settings.data_dir / "spark-tmp"))
        .config("spark.sql.warehouse.dir", str(settings.data_dir / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions",
                "-Duser.timezone=UTC -Dderby.system.home=" + str(settings.data_dir / "derby"))
    )
    packages = spark_packages(settings)
    if packages:
        builder = builder.config("spark.jars.packages", packages)
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    (settings.data_dir / "spark-tmp").mkdir(parents=True, exist_ok=True)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    register(spark)
    return spark


#: the logger that prints a failed streaming query's whole stack trace
STREAMING_LOGGER = "org.apache.spark.sql.execution.streaming"


def quiet_query_errors(spark: Any) -> None:
    """Silence Spark's log of a failed streaming query (the caller reports the failure)."""
    jvm = spark.sparkContext._jvm
    log4j = jvm.org.apache.logging.log4j
    log4j.core.config.Configurator.setLevel(STREAMING_LOGGER, log4j.Level.OFF)
