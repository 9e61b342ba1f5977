"""Where the JVM class-data-sharing archive (AppCDS) of Spark's classes lives, whether a
session may use it, and the JVM options that map or record it.

The archive is recorded by `ecom ingest class-archive` (`ecom_app.class_archive`); this
module is what a Spark session needs at start. The file name carries a key of the `java`
on PATH, pyspark's version and its jars, so another JDK or Spark has no archive yet and
sessions start without one (as they do when ECOM_SPARK_CLASS_ARCHIVE=false or with the
native Kafka source, whose connector changes the class path).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from importlib.metadata import version
from pathlib import Path

from ecom.config import REPO_ROOT, Settings

CACHE_DIR = REPO_ROOT / ".cache" / "jvm"
#: JVM log tags of class data sharing: a stale archive is skipped silently
QUIET = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def archive_key() -> str:
    """Hash of what an archive is only valid for: the java binary, pyspark and its jars."""
    java = shutil.which("java")
    java_id = ""
    if java:
        real = Path(java).resolve()
        java_id = f"{real}:{real.stat().st_mtime_ns}"
    jars = sorted(p.name for p in (pyspark_home() / "jars").glob("*.jar"))
    digest = hashlib.sha256("\n".join([java_id, version("pyspark"), *jars]).encode())
    return digest.hexdigest()[:16]


def archive_path(cache_dir: Path | None = None) -> Path:
    return (cache_dir or CACHE_DIR) / f"spark-{archive_key()}.jsa"


def usable(settings: Settings, cache_dir: Path | None = None) -> Path | None:
    """The archive a session of `settings` should start with, if any."""
    if not settings.spark_class_archive or settings.kafka_source != "python":
        return None
    path = archive_path(cache_dir)
    return path if path.is_file() and path.stat().st_size > 0 else None


def use_options(path: Path) -> list[str]:
    return ["-Xshare:auto", f"-XX:SharedArchiveFile={path}", *QUIET]


def record_options(path: Path) -> list[str]:
    return [f"-XX:ArchiveClassesAtExit={path}", *QUIET]


def set_aside(path: Path) -> Path:
    """Rename an archive the JVM would not start with, so the next session does not try it."""
    bad = path.with_name(path.name + ".bad")
    os.replace(path, bad)
    return bad


def pyspark_home() -> Path:
    """pyspark's install folder, found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("pyspark is not installed")
    return Path(spec.origin).parent
