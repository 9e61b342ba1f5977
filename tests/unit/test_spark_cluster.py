"""The local standalone cluster's pure parts (`ingestion.cluster`), and the bounded wait of
`ecom warehouse migrate --wait` for a PostgreSQL that is still starting (`ecom.db`)."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg2
import pytest

import ecom.db
from ecom.config import Settings
from ecom.errors import UserError
from ingestion import cluster, jvm_archive
from ingestion.spark import executor_java_options


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(data_dir=tmp_path, spark_master_port=17077, spark_master_ui_port=18077,
                    **changes)


def test_daemons_run_the_projects_python_on_the_loopback(tmp_path: Path) -> None:
    env = cluster.environment(_settings(tmp_path))
    assert env["PYSPARK_PYTHON"] == sys.executable  # the executors import the project
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["SPARK_DAEMON_MEMORY"] == cluster.DAEMON_MEMORY
    assert Path(env["SPARK_HOME"], "bin", "spark-class").is_file()
    assert cluster.master_url(_settings(tmp_path)) == "spark://127.0.0.1:17077"


def test_busy_workers_are_matched_by_the_port_each_pid_file_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    settings.run_dir.mkdir(parents=True)
    import os

    for n, port in ((1, 40001), (2, 40002)):  # our own pid: a live process
        (settings.run_dir / f"spark-worker-{n}.pid").write_text(f"{os.getpid()} {port}\n")
    state = {"workers": [{"port": 40001, "state": "ALIVE", "coresused": 0},
                         {"port": 40002, "state": "ALIVE", "coresused": 1}]}
    monkeypatch.setattr(cluster, "master_state", lambda _s, timeout=2.0: state)
    assert cluster.busy_workers(settings) == ["worker-2"]
    assert set(cluster.worker_pids(settings)) == {"worker-1", "worker-2"}


def test_executors_map_the_class_archive_only_on_this_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "spark.jsa"
    archive.write_bytes(b"x")
    monkeypatch.setattr(jvm_archive, "usable", lambda _s, cache_dir=None: archive)
    here = executor_java_options(_settings(tmp_path, spark_master="spark://127.0.0.1:7077"))
    away = executor_java_options(_settings(tmp_path, spark_master="spark://spark-master:7077"))
    assert f"-XX:SharedArchiveFile={archive}" in here
    assert "SharedArchiveFile" not in away
    assert "-Duser.timezone=UTC" in away and "-XX:TieredStopAtLevel=1" in away


def test_migrate_waits_for_a_starting_server_but_not_for_a_refused_login(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def failing(reason: str, succeed_after: int) -> object:
        def connect(_settings: Settings, _role: str = "admin", **_kw: object) -> str:
            calls.append(reason)
            if len(calls) > succeed_after:
                return "connection"
            raise UserError("no") from psycopg2.OperationalError(reason)
        return connect

    monkeypatch.setattr(ecom.db.time, "sleep", lambda _s: None)
    monkeypatch.setattr(ecom.db, "connect", failing("Connection refused", 3))
    assert ecom.db.connect_waiting(_settings(tmp_path), wait_s=60) == "connection"
    assert len(calls) == 4
    calls.clear()
    monkeypatch.setattr(ecom.db, "connect", failing("password authentication failed", 3))
    with pytest.raises(UserError):
        ecom.db.connect_waiting(_settings(tmp_path), wait_s=60)
    assert len(calls) == 1  # not worth a retry
