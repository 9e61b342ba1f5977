"""A Spark standalone cluster on this machine, from the installed pyspark (`ecom spark up`).

A master and `ECOM_SPARK_WORKERS` workers, each its own JVM process (and process group)
with `ECOM_SPARK_WORKER_CORES` cores and `ECOM_SPARK_WORKER_MEMORY`, started with pyspark's
own `bin/spark-class` (nothing to download). Point the ingestion at it with
`ECOM_SPARK_MASTER=spark://127.0.0.1:<ECOM_SPARK_MASTER_PORT>`: the driver then runs in
`ecom ingest ...` (client mode) and the executors in the workers' processes, exactly as on
a cluster of machines. The workers run the executors' Python with the project's
interpreter (`PYSPARK_PYTHON`, the venv where the project is installed), and every process
shares `ECOM_DATA_DIR`, where the streaming checkpoint lives: on real hosts that must be
storage every node reaches (HDFS, S3, NFS; see docs/scaling.md).

The tests and `bench/ingest.py` start private clusters on free ports; the slow cluster test
kills a worker with SIGKILL mid-stream (`kill_worker`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ecom.config import Settings
from ecom.errors import UserError
from ecom.ports import free_port, pid_alive, port_answers, port_is_free, read_pid, terminate
from ingestion import jvm_archive
from ingestion.jvm_archive import pyspark_home

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
#: heap of the master and worker daemons themselves (executors get ECOM_SPARK_EXECUTOR_MEMORY)
DAEMON_MEMORY = "256m"


@dataclass
class ClusterStatus:
    master_url: str
    ui_url: str
    master: str  # "running (pid N)" / "stopped"
    workers: list[str] = field(default_factory=list)  # "worker-1 running (pid N)"...
    alive_workers: int = 0
    cores: int = 0
    cores_used: int = 0
    apps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def master_url(settings: Settings) -> str:
    return f"spark://{HOST}:{settings.spark_master_port}"


def ui_url(settings: Settings) -> str:
    return f"http://{HOST}:{settings.spark_master_ui_port}"


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"spark-{name}.pid"


def _work_dir(settings: Settings) -> Path:
    return settings.data_dir / "spark-cluster"


def environment(settings: Settings) -> dict[str, str]:
    """The environment of the master and workers (and so of the executors they launch)."""
    env = dict(os.environ)
    archive = jvm_archive.usable(settings)
    if archive is not None:  # the daemons' classes are Spark's too: map them, start faster
        env["SPARK_DAEMON_JAVA_OPTS"] = " ".join(jvm_archive.use_options(archive))
    env.update(
        SPARK_HOME=str(pyspark_home()),
        SPARK_LOCAL_IP=HOST,  # every daemon, UI and executor listens on the loopback only
        SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
        SPARK_LOG_DIR=str(settings.log_dir),
        SPARK_LOCAL_DIRS=str(settings.data_dir / "spark-tmp"),
        PYSPARK_PYTHON=sys.executable,  # the executors' Python: the project's venv
    )
    return env


def _spark_class(main_class: str, *args: str) -> list[str]:
    return [str(pyspark_home() / "bin" / "spark-class"), main_class, *args]


def _start(settings: Settings, name: str, command: list[str], port: int | None = None) -> int:
    """Start one daemon in its own process group (so a kill takes its executors too); its
    pid file also records the port it listens on."""
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.log_dir / f"spark-{name}.log", "ab")  # noqa: SIM115 - to the child
    proc = subprocess.Popen(command, env=environment(settings), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    _pid_file(settings, name).write_text(f"{proc.pid} {port or ''}\n")
    return proc.pid


def master_state(settings: Settings, timeout: float = 2.0) -> dict | None:
    """The master's own JSON status (workers, cores, applications), or None if it is down."""
    try:
        with urllib.request.urlopen(f"{ui_url(settings)}/json/", timeout=timeout) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError):
        return None


def _alive_workers(state: dict | None) -> int:
    return 0 if state is None else sum(w.get("state") == "ALIVE" for w in state["workers"])


def up(settings: Settings, workers: int | None = None, timeout: float = 120.0
       ) -> ClusterStatus:
    """Start the master and the workers that are not running; wait until all registered."""
    workers = workers or settings.spark_workers
    notes = []
    if read_pid(_pid_file(settings, "master")) is None:
        for port in (settings.spark_master_port, settings.spark_master_ui_port):
            if not port_is_free(HOST, port):
                raise UserError(
                    f"Port {port} on {HOST} is taken, so the Spark master cannot start. Stop "
                    "what uses it or set ECOM_SPARK_MASTER_PORT / ECOM_SPARK_MASTER_UI_PORT.")
        pid = _start(settings, "master", _spark_class(
            MASTER_CLASS, "--host", HOST, "--port", str(settings.spark_master_port),
            "--webui-port", str(settings.spark_master_ui_port)))
        notes.append(f"master started (pid {pid})")
    _wait(lambda: master_state(settings) is not None, timeout, settings, "master")
    expected = 0
    for n in range(1, workers + 1):
        name = f"worker-{n}"
        expected += 1
        if read_pid(_pid_file(settings, name)) is not None:
            continue
        work_dir = _work_dir(settings) / name
        work_dir.mkdir(parents=True, exist_ok=True)
        port = free_port(HOST)
        pid = _start(settings, name, _spark_class(
            WORKER_CLASS, master_url(settings), "--host", HOST, "--port", str(port),
            "--cores", str(settings.spark_worker_cores),
            "--memory", settings.spark_worker_memory, "--work-dir", str(work_dir),
            "--webui-port", "0"), port)
        notes.append(f"{name} started (pid {pid}, {settings.spark_worker_cores} core(s), "
                     f"{settings.spark_worker_memory})")
    _wait(lambda: _alive_workers(master_state(settings)) >= expected, timeout, settings,
          f"{expected} worker(s)")
    status = status_of(settings)
    status.notes = notes
    return status


def _wait(ready: object, timeout: float, settings: Settings, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        if read_pid(_pid_file(settings, "master")) is None:
            break
        time.sleep(0.5)
    raise UserError(f"The Spark {what} did not come up within {timeout:.0f} s; see "
                    f"{settings.log_dir}/spark-*.log.")


def worker_pids(settings: Settings) -> dict[str, int]:
    """Running workers by name (worker-1, worker-2, ...)."""
    out = {}
    for path in sorted(settings.run_dir.glob("spark-worker-*.pid")):
        pid = read_pid(path)
        if pid is not None:
            out[path.stem.removeprefix("spark-")] = pid
    return out


def busy_workers(settings: Settings) -> list[str]:
    """Running workers the master shows with cores in use (an application's executor)."""
    state = master_state(settings) or {"workers": []}
    busy = {w["port"] for w in state["workers"]
            if w.get("state") == "ALIVE" and w.get("coresused")}
    out = []
    for path in sorted(settings.run_dir.glob("spark-worker-*.pid")):
        fields = path.read_text().split()
        if read_pid(path) is not None and len(fields) > 1 and int(fields[1]) in busy:
            out.append(path.stem.removeprefix("spark-"))
    return out


def kill_worker(settings: Settings, name: str) -> int:
    """SIGKILL a worker's whole process group (its executors and their Python workers too),
    as when its machine dies. Returns the worker's pid."""
    pid = worker_pids(settings)[name]
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    _pid_file(settings, name).unlink(missing_ok=True)
    return pid


def down(settings: Settings) -> list[str]:
    """Stop the workers (their executors with them), then the master."""
    stopped = []
    for name, pid in worker_pids(settings).items():
        _stop_group(pid)
        stopped.append(name)
    for path in settings.run_dir.glob("spark-worker-*.pid"):
        path.unlink(missing_ok=True)
    pid = read_pid(_pid_file(settings, "master"))
    _pid_file(settings, "master").unlink(missing_ok=True)
    if pid is not None:
        _stop_group(pid)
        stopped.append("master")
    return stopped


def _stop_group(pid: int) -> None:
    """SIGTERM the daemon (it stops its executors), then SIGKILL what is left of its group."""
    terminate(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def status_of(settings: Settings) -> ClusterStatus:
    pid = read_pid(_pid_file(settings, "master"))
    status = ClusterStatus(master_url(settings), ui_url(settings),
                           f"running (pid {pid})" if pid else "stopped")
    for name, worker_pid in worker_pids(settings).items():
        status.workers.append(f"{name} running (pid {worker_pid})")
    state = master_state(settings) if pid or port_answers(HOST, settings.spark_master_ui_port) \
        else None
    if state is not None:
        status.alive_workers = _alive_workers(state)
        status.cores = int(state.get("cores", 0))
        status.cores_used = int(state.get("coresused", 0))
        status.apps = [f"{a.get('name')} ({a.get('cores')} cores, {a.get('state')})"
                       for a in state.get("activeapps", [])]
    return status
