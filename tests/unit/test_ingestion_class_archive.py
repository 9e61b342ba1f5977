"""Which JVM options a Spark session starts with: JIT, class archive, recording."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ecom.config import Settings
from ecom_app.class_archive import remove_abandoned
from ingestion import jvm_archive
from ingestion.spark import java_options


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(jvm_archive, "CACHE_DIR", tmp_path)
    return tmp_path


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings().replace(data_dir=tmp_path / "data", **changes)  # type: ignore[arg-type]


def test_without_an_archive_the_jvm_starts_plain_with_the_configured_options(
        cache: Path) -> None:
    options, archive = java_options(_settings(cache))
    assert archive is None
    assert "-XX:TieredStopAtLevel=1" in options.split()
    assert "SharedArchiveFile" not in options
    assert f"-XX:ErrorFile={cache / 'data' / 'logs' / 'jvm-crash-%p.log'}" in options.split()


def test_a_recorded_archive_is_mapped(cache: Path) -> None:
    path = jvm_archive.archive_path()
    path.write_bytes(b"archive")
    options, archive = java_options(_settings(cache))
    assert archive == path
    assert f"-XX:SharedArchiveFile={path}" in options.split()
    assert "-Xshare:auto" in options.split()


@pytest.mark.parametrize("changes", [{"spark_class_archive": False},
                                     {"kafka_source": "native"}])
def test_the_archive_is_not_used_when_off_or_with_another_class_path(
        cache: Path, changes: dict) -> None:
    jvm_archive.archive_path().write_bytes(b"archive")
    options, archive = java_options(_settings(cache, **changes))
    assert archive is None and "SharedArchiveFile" not in options


def test_an_empty_archive_is_never_mapped(cache: Path) -> None:
    jvm_archive.archive_path().write_bytes(b"")
    assert java_options(_settings(cache))[1] is None


def test_recording_writes_to_the_given_file_and_maps_nothing(cache: Path) -> None:
    jvm_archive.archive_path().write_bytes(b"archive")
    target = cache / "new.partial"
    options, archive = java_options(_settings(cache), record_to=target)
    assert archive is None
    assert f"-XX:ArchiveClassesAtExit={target}" in options.split()
    assert "SharedArchiveFile" not in options


def test_empty_java_options_leave_the_jit_default(cache: Path) -> None:
    options, _ = java_options(_settings(cache, spark_java_options=""))
    assert "TieredStopAtLevel" not in options


def test_the_key_names_the_archive_and_is_stable(cache: Path) -> None:
    key = jvm_archive.archive_key()
    assert len(key) == 16 and key == jvm_archive.archive_key()
    assert jvm_archive.archive_path().name == f"spark-{key}.jsa"


def test_set_aside_moves_the_archive_out_of_the_way(cache: Path) -> None:
    path = jvm_archive.archive_path()
    path.write_bytes(b"archive")
    bad = jvm_archive.set_aside(path)
    assert not path.exists() and bad.read_bytes() == b"archive"


def test_partial_archives_of_dead_recordings_are_removed(cache: Path) -> None:
    mine = cache / f"spark-k.jsa.{os.getpid()}.partial"
    dead = cache / "spark-k.jsa.999999999.partial"
    for path in (mine, dead):
        path.write_bytes(b"partial")
    remove_abandoned(cache)
    assert mine.exists() and not dead.exists()
