"""Small helpers about TCP ports and processes."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import time
from pathlib import Path


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


#: where `free_port` picks: below Linux's ephemeral range (32768-60999), from which the
#: kernel gives outgoing connections and `bind(0)` their ports, so a port picked here is not
#: taken by some connection before the service meant for it binds it (an Airflow API server
#: binds its port ~40 s after the pick)
PICK_PORTS = range(20000, 32768)
_picked: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now that no other call in this process was given (for private
    stacks and benchmarks); one from the kernel if none is found below its ephemeral range."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(PICK_PORTS)
        if port not in _picked and port_is_free(host, port):
            _picked.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0): look at its state
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    return True


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def terminate_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM to the process group `pid` leads (a server started in its own session, and
    whatever it started), wait for its leader, then SIGKILL the group's leftovers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
