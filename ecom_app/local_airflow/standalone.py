"""`ecom airflow up|down|status`: Airflow standalone in the background, against the stack.

`airflow standalone` runs the scheduler, DAG processor, triggerer and API server (UI) as
children of one process. We start it in its own session (process group), remember its pid,
and stop exactly that group on `down`.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ecom_pipeline import DAG_ID

from ecom.config import Settings
from ecom.errors import UserError
from ecom.ports import free_port, port_is_free, read_pid, terminate_group
from ecom_app.local_airflow.airflow_home import (
    AIRFLOW_BIN,
    airflow_env,
    home_dir,
    password_file,
    prepare,
    run_airflow,
)
from ecom_app.local_airflow.manifest import ensure_manifest


@dataclass(frozen=True)
class AirflowStatus:
    running: bool
    pid: int | None
    url: str
    home: Path
    log_file: Path
    username: str | None = None
    password: str | None = None


def pid_file(settings: Settings) -> Path:
    return home_dir(settings) / "standalone.pid"


def log_file(settings: Settings) -> Path:
    return home_dir(settings) / "standalone.log"


def url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.airflow_port}"


def read_login(settings: Settings) -> tuple[str | None, str | None]:
    """(username, password) from the file the simple auth manager generates, if present."""
    try:
        users = json.loads(password_file(settings).read_text())
    except (OSError, ValueError):
        return None, None
    if not users:
        return None, None
    username, password = next(iter(users.items()))
    return username, password


def status(settings: Settings) -> AirflowStatus:
    pid = read_pid(pid_file(settings))
    user, password = read_login(settings)
    return AirflowStatus(pid is not None, pid, url(settings), home_dir(settings),
                         log_file(settings), user, password)


def up(settings: Settings, timeout_s: float = 240.0) -> AirflowStatus:
    """Start `airflow standalone` (idempotent) and wait until its API answers."""
    current = status(settings)
    if current.running:
        return current
    port = settings.airflow_port
    if not port_is_free("127.0.0.1", port):
        raise UserError(
            f"Port {port} is taken, so the Airflow UI cannot start there. Free it or set "
            "ECOM_AIRFLOW_PORT to another port."
        )
    ensure_manifest(settings)
    prepare(settings)
    env = airflow_env(settings, extra={
        # the log servers default to fixed ports (8793/8794): pick free ones
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    })
    run_airflow(settings, "dags", "reserialize", env=env)  # the UI lists DAGs from the DB
    log = log_file(settings)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(AIRFLOW_BIN), "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=home_dir(settings),
        )
    pid_file(settings).write_text(f"{proc.pid}\n")
    _wait_healthy(settings, proc, timeout_s)
    user, password = _wait_login(settings, timeout_s=30)
    return AirflowStatus(True, proc.pid, url(settings), home_dir(settings), log, user, password)


def down(settings: Settings) -> bool:
    """Stop the standalone process group we started; True if something was running."""
    pid = read_pid(pid_file(settings))
    if pid is None:
        pid_file(settings).unlink(missing_ok=True)
        return False
    terminate_group(pid, timeout=30)  # our own session: standalone and its children
    pid_file(settings).unlink(missing_ok=True)
    return True


#: what uvicorn logs when the API server cannot bind its port (standalone carries on without)
BIND_FAILED = b"address already in use"


def _wait_healthy(settings: Settings, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until the API answers; a start that fails stops what it started."""
    try:
        _poll_health(settings, proc, timeout_s)
    except UserError:
        down(settings)
        raise


def _poll_health(settings: Settings, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    health = f"{url(settings)}/api/v2/monitor/health"
    log = log_file(settings)
    log_start = log.stat().st_size if log.is_file() else 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(
                f"airflow standalone exited with code {proc.returncode} while starting; "
                f"see {log}."
            )
        if BIND_FAILED in _log_since(log, log_start):
            raise UserError(
                f"Port {settings.airflow_port} was taken while Airflow started, so its API "
                "server could not listen there (Airflow is stopped again). Free it or set "
                "ECOM_AIRFLOW_PORT to another port."
            )
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                body = json.loads(response.read())
            if body.get("metadatabase", {}).get("status") == "healthy":
                return
        except (OSError, ValueError):
            pass
        time.sleep(1)
    raise UserError(
        f"Airflow did not answer on {health} within {timeout_s:.0f} s (it is stopped again); "
        f"see {log}."
    )


def _log_since(log: Path, offset: int) -> bytes:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""


def _wait_login(settings: Settings, timeout_s: float) -> tuple[str | None, str | None]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        user, password = read_login(settings)
        if user:
            return user, password
        time.sleep(0.5)
    return None, None


def dag_url(settings: Settings) -> str:
    return f"{url(settings)}/dags/{DAG_ID}"
