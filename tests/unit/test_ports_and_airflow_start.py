"""Picking ports for private stacks, and an Airflow start whose port was taken meanwhile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ecom.config import Settings
from ecom.errors import UserError
from ecom.ports import PICK_PORTS, free_port, pid_alive, port_is_free
from ecom_app.local_airflow import standalone


def test_free_ports_come_from_below_the_ephemeral_range_and_are_not_given_twice() -> None:
    ports = [free_port() for _ in range(50)]
    assert all(p in PICK_PORTS and port_is_free("127.0.0.1", p) for p in ports)
    assert len(set(ports)) == len(ports)


def test_an_api_server_that_cannot_bind_stops_the_start_with_one_sentence(
        tmp_path: Path) -> None:
    settings = Settings.from_env({"ECOM_DATA_DIR": str(tmp_path), "ECOM_AIRFLOW_PORT": "28080"})
    standalone.log_file(settings).parent.mkdir(parents=True)
    standalone.log_file(settings).write_bytes(b"earlier run: address already in use\n")
    # a stand-in for `airflow standalone` that logs uvicorn's bind error and stays up
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; time.sleep(0.3); "
         f"open({str(standalone.log_file(settings))!r}, 'ab').write(b'[Errno 98] error while "
         "attempting to bind on address: address already in use\\n'); time.sleep(60)"],
        start_new_session=True)
    standalone.pid_file(settings).write_text(f"{proc.pid}\n")
    try:
        with pytest.raises(UserError, match="Port 28080 was taken while Airflow started"):
            standalone._wait_healthy(settings, proc, timeout_s=20)
        proc.wait(timeout=10)  # stopped again, not left running
        assert not pid_alive(proc.pid)
        assert not standalone.pid_file(settings).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
