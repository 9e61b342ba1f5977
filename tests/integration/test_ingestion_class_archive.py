"""Spark's JVM really starts from the recorded class archive, and survives a broken one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ecom.config import REPO_ROOT, Settings
from ecom_app.class_archive import build
from ingestion import jvm_archive

# a fresh JVM per case: the test process may already hold a SparkContext. Settings()
# reads no environment, so the caller's ECOM_* variables cannot leak in
SESSION = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from ecom.config import Settings
    from ingestion import jvm_archive
    from ingestion.spark import build_session

    jvm_archive.CACHE_DIR = Path(sys.argv[1])
    data = Path(sys.argv[2])
    settings = Settings().replace(data_dir=data, spark_java_options=(
        "-XX:TieredStopAtLevel=1 -Xlog:class+load=info:file=" + str(data / "classes.log")))
    spark = build_session(settings, "class-archive-test")
    print(json.dumps({"rows": spark.range(5).count()}))
    spark.stop()
""")


@pytest.fixture(scope="module")
def archive() -> Path:
    """The archive `make setup` recorded (recorded here if it has not been)."""
    path = jvm_archive.archive_path()
    return path if path.is_file() else build(Settings.from_env())


def _session(cache: Path, data: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", SESSION, str(cache), str(data)],
                          cwd=data, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _source_of(classes_log: Path, name: str) -> str:
    for line in classes_log.read_text().splitlines():
        if f" {name} source: " in line:
            return line.split(" source: ", 1)[1]
    raise AssertionError(f"{name} was never loaded")


def test_sessions_load_spark_classes_from_the_recorded_archive(
        archive: Path, tmp_path: Path) -> None:
    assert _session(archive.parent, tmp_path) == {"rows": 5}
    assert _source_of(tmp_path / "classes.log", "org.apache.spark.SparkContext") \
        == "shared objects file (top)"


def test_a_truncated_archive_is_set_aside_and_the_session_starts_without_it(
        archive: Path, tmp_path: Path) -> None:
    cache, data = tmp_path / "cache", tmp_path / "data"
    cache.mkdir()
    data.mkdir()
    broken = cache / archive.name
    with archive.open("rb") as src, broken.open("wb") as dst:
        dst.write(src.read(archive.stat().st_size // 3))  # the JVM dies of SIGBUS on it

    assert _session(cache, data) == {"rows": 5}
    assert not broken.exists() and (cache / f"{archive.name}.bad").is_file()
    assert _source_of(data / "classes.log", "org.apache.spark.SparkContext").endswith(".jar")
    crash_logs = list((data / "logs").glob("jvm-crash-*.log"))
    assert crash_logs, "the crashed JVM's report belongs in the data dir's logs"
    assert not list(data.glob("hs_err_pid*.log"))
    shutil.rmtree(cache)
