"""A class-data-sharing archive (AppCDS) of the classes Spark's JVM loads, for faster starts.

Every Spark driver JVM loads thousands of classes from pyspark's ~250 jars; on the 2-core
reference machine that is ~1.6 s of each session start and ~1 s of a query's first
micro-batch. JDK 17 can map the classes an earlier run recorded from an archive instead
(`-XX:SharedArchiveFile`). `ecom ingest class-archive` (run by `make setup`) records one:
it runs the real pipeline once on a private embedded stack (simulated events -> both
streaming queries -> a batch replay) in a JVM started with `-XX:ArchiveClassesAtExit`, waits
for that JVM to exit, and only then moves the finished archive into place. A truncated
archive crashes the JVM (SIGBUS), so an unfinished one is never used.

The file name carries a key of the `java` on PATH, pyspark's version and its jars, so
another JDK or Spark has no archive yet and sessions start without one (as they do when
ECOM_SPARK_CLASS_ARCHIVE=false or with the native Kafka source, whose connector changes the
class path). If the JVM does not start with the archive, `ingestion.spark.build_session`
sets it aside and starts without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecom.config import REPO_ROOT, Settings, isolated_settings
from ecom.errors import UserError
from ecom.ports import free_port
from ecom.stack.manager import down, up
from ingestion.batch import replay
from ingestion.jvm_archive import archive_path
from ingestion.spark import build_session
from ingestion.stream import run_stream


def _quiet(_line: str) -> None:
    """A log that drops the recording run's progress lines."""


def remove_abandoned(cache_dir: Path) -> None:
    """Partial archives of recordings whose process is gone (a JVM still writing one after
    its Python process failed would be the only other owner: it belongs to a dead pid too)."""
    for partial in cache_dir.glob("*.partial"):
        pid = partial.suffixes[-2].lstrip(".") if len(partial.suffixes) >= 2 else ""
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            partial.unlink(missing_ok=True)


def stop_jvm(spark: Any, timeout_s: float = 300.0) -> int | None:
    """Stop the session and wait for its JVM to exit (it writes a recorded archive on exit).

    Returns the JVM's exit code (None if this session's JVM was not started by us)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    spark.stop()
    if gateway is None or proc is None:
        return None
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc.stdin is not None:
        proc.stdin.close()  # the gateway JVM exits at EOF on its stdin
    return proc.wait(timeout=timeout_s)


def build(base: Settings, *, force: bool = False, events: int = 5_000,
          log: Callable[[str], None] = print) -> Path:
    """Record the archive (see the module docstring); a no-op when it already exists."""
    path = archive_path()
    if path.is_file() and not force:
        log(f"class archive up to date: {path}")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path.parent)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ecom-class-archive-"))
    settings = isolated_settings(work, free_port(), free_port()).replace(
        spark_class_archive=False, spark_java_options=base.spark_java_options)
    try:
        log("recording Spark's classes: one small run of the pipeline on a private stack ...")
        settings, _ = up(settings)
        subprocess.run(
            [sys.executable, "-m", "ecom_app.cli", "simulate", "backfill", "--days", "1",
             "--events-per-day", str(events), "--bad-rate", "0.01", "--no-progress"],
            cwd=REPO_ROOT, env=settings.subprocess_env(), check=True,
            stdout=subprocess.DEVNULL)
        spark = build_session(settings, "ecom-class-archive", record_to=partial)
        run_stream(settings, available_now=True, spark=spark, log=_quiet)
        replay(settings, spark, log=_quiet)
        code = stop_jvm(spark)
    finally:
        down(settings)
        shutil.rmtree(work, ignore_errors=True)
    if code != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        raise UserError(f"The recording JVM exited with code {code} and wrote no class archive; "
                        "Spark sessions start without one (slower, otherwise the same).")
    os.replace(partial, path)
    log(f"class archive written: {path} ({path.stat().st_size / 2**20:.0f} MiB) in "
        f"{time.perf_counter() - started:.0f} s")
    return path
