"""The Spark session for ingestion: master and memory from Settings, small and quiet.

`local[*]` by default; point `ECOM_SPARK_MASTER` at a cluster (`spark://...`, `yarn`, `k8s://`)
and `ECOM_SPARK_DRIVER_MEMORY` at its size. The driver must be able to reach PostgreSQL: it
lands every micro-batch (see `ingestion.sink`). The driver JVM starts with
`ECOM_SPARK_JAVA_OPTIONS` (default: C1 JIT only, see `.env.example`) and maps the class
archive `ecom ingest class-archive` recorded, if any (see `ingestion.jvm_archive`). For the
native Kafka source the connector package is added with `spark.jars.packages` (see
`ingestion.native`).

Spark's own console output (log4j's WARN lines about the loopback hostname, native-hadoop,
the default log4j profile, the JVM's incubator-module notice) goes to a file under the
data dir's `logs/` (`spark_log_file`), not the terminal: the driver JVM is launched with its
stdout and stderr on that file, so users watch the project's progress lines, and the file
keeps what Spark said when something goes wrong.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from ecom.config import Settings
from ecom.kafka_security import KafkaSecurity
from ingestion import jvm_archive
from ingestion.native import jvm_login_options

#: Shuffle partitions: the only shuffle is the 5-minute window aggregation on small keys.
SHUFFLE_PARTITIONS = 2
#: masters whose executors run on this machine, where the class archive is
LOCAL_STANDALONE = ("spark://127.0.0.1:", "spark://localhost:")


def java_options(settings: Settings, record_to: Path | None = None) -> tuple[str, Path | None]:
    """The driver JVM's options, and the class archive they map (if any)."""
    options = ["-Duser.timezone=UTC", f"-Dderby.system.home={settings.data_dir / 'derby'}",
               f"-XX:ErrorFile={settings.log_dir / 'jvm-crash-%p.log'}",
               *jvm_login_options(settings), *shlex.split(settings.spark_java_options)]
    archive = None if record_to else jvm_archive.usable(settings)
    if record_to:
        options += jvm_archive.record_options(record_to)
    elif archive:
        options += jvm_archive.use_options(archive)
    return " ".join(options), archive


def spark_log_file(settings: Settings, app_name: str) -> Path:
    """Where the driver JVM of `app_name` writes its console output (appended)."""
    return settings.log_dir / f"spark-{app_name}.log"
def executor_java_options(settings: Settings) -> str:
    """The executors' JVM options: UTC and ECOM_SPARK_JAVA_OPTIONS, like the driver's; on a
    standalone master on this machine (`ecom spark up`) also the class archive, which
    their JVMs can map as the driver's does (in local mode they run inside the driver)."""
    options = ["-Duser.timezone=UTC", *jvm_login_options(settings),
               *shlex.split(settings.spark_java_options)]
    archive = jvm_archive.usable(settings)
    if archive and settings.spark_master.startswith(LOCAL_STANDALONE):
        options += jvm_archive.use_options(archive)
    return " ".join(options)


def build_session(settings: Settings, app_name: str = "ecom-ingest", *, ui: bool = False,
                  extra_conf: dict[str, str] | None = None,
                  record_to: Path | None = None) -> Any:
    """Create (or reuse) the SparkSession with the project's Kafka source registered.

    `record_to`: start the JVM recording its classes into that archive (see
    `ecom_app.class_archive`); otherwise the recorded archive is used when there is one.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from ingestion.kafka_source import register

    for folder in (settings.data_dir / "spark-tmp", settings.log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    options, archive = java_options(settings, record_to)
    log_file = spark_log_file(settings, app_name)
    try:
        spark = _start(_builder(settings, app_name, ui, options, extra_conf), log_file)
    except Exception:
        if archive is None:
            raise
        # the JVM did not start with the archive (e.g. a JDK patch release the key does
        # not see). If it starts without it (else the archive was not the cause: raise),
        # set the archive aside so no later session tries it
        options, _ = java_options(settings.replace(spark_class_archive=False))
        spark = _start(_builder(settings, app_name, ui, options, extra_conf), log_file)
        bad = jvm_archive.set_aside(archive)
        print(f"Spark's JVM did not start with the class archive {archive} (moved to {bad}); "
              "started without it. `ecom ingest class-archive --force` records a new one.",
              file=sys.stderr)
    spark.sparkContext.setLogLevel("ERROR")
    register(spark)
    return spark


def _start(builder: Any, log_file: Path) -> Any:
    """`builder.getOrCreate()`, the driver JVM (if this process has none yet) launched with
    its stdout and stderr appended to `log_file`."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is None:
        conf = SparkConf(loadDefaults=False).setAll(list(builder._options.items()))
        with open(log_file, "ab") as out:
            out.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: "
                      f"{conf.get('spark.app.name')} ----\n".encode())
            out.flush()
            gateway = launch_gateway(conf, popen_kwargs={"stdout": out, "stderr": out})
        SparkContext._gateway = gateway
        SparkContext._jvm = gateway.jvm
    return builder.getOrCreate()


def _builder(settings: Settings, app_name: str, ui: bool, driver_java_options: str,
             extra_conf: dict[str, str] | None) -> Any:
    from pyspark.sql import SparkSession

    from ingestion.native import spark_packages

    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.executor.memory", settings.spark_executor_memory)
        .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
        .config("spark.default.parallelism", str(SHUFFLE_PARTITIONS))
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.executor.extraJavaOptions", executor_java_options(settings))
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.streaming.metricsEnabled", "false")
        .config("spark.local.dir", str(settings.data_dir / "spark-tmp"))
        .config("spark.sql.warehouse.dir", str(settings.data_dir / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", driver_java_options)
    )
    packages = spark_packages(settings)
    if packages:
        builder = builder.config("spark.jars.packages", packages)
    # Kafka secrets reach the executors through their environment, never as a source
    # option: local mode's Python workers inherit this process's environment, a cluster's
    # executors get spark.executorEnv (whose values Spark redacts: the names say PASSWORD)
    for name, value in KafkaSecurity.of(settings).secret_env().items():
        os.environ[name] = value
        builder = builder.config(f"spark.executorEnv.{name}", value)
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    return builder


#: the logger that prints a failed streaming query's whole stack trace
STREAMING_LOGGER = "org.apache.spark.sql.execution.streaming"


def quiet_query_errors(spark: Any) -> None:
    """Silence Spark's log of a failed streaming query (the caller reports the failure)."""
    jvm = spark.sparkContext._jvm
    log4j = jvm.org.apache.logging.log4j
    log4j.core.config.Configurator.setLevel(STREAMING_LOGGER, log4j.Level.OFF)
