"""`ecom dashboard up|down|status|serve`: the Streamlit dashboards (the `dashboards` stage).

`up` starts `streamlit run dashboards/app.py` in its own session (process group) in the
background, on 127.0.0.1 at ECOM_DASHBOARD_PORT, remembers its pid under the data dir's
run dir and waits until the server answers its health check; `down` stops exactly that
group. `serve` runs the same server in the foreground (what a container runs).
The server gets the settings as `ECOM_*` variables (the reader's password included, like
Airflow's and dbt's children) and writes its log, tracebacks included, to
`<data dir>/logs/dashboard.log`; the pages themselves show one sentence per failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

import dashboards
from ecom.config import Settings, load_settings
from ecom.errors import UserError
from ecom.ports import port_is_free, read_pid, terminate_group

APP = Path(dashboards.__file__).resolve().parent / "app.py"
PAGES = ("business", "realtime", "operations", "quality")

console = Console()
dashboard_app = typer.Typer(help="The dashboards (Streamlit): business, realtime, operations, "
                            "data quality.", no_args_is_help=True)


@dataclass(frozen=True)
class DashboardStatus:
    running: bool
    pid: int | None
    url: str
    log_file: Path


def pid_file(settings: Settings) -> Path:
    return settings.run_dir / "dashboard.pid"


def log_file(settings: Settings) -> Path:
    return settings.log_dir / "dashboard.log"


def url(settings: Settings, page: str = "") -> str:
    return f"http://127.0.0.1:{settings.dashboard_port}/{page}"


def command(settings: Settings, address: str = "127.0.0.1") -> list[str]:
    """The `streamlit run` command line: headless, no usage statistics, no file watcher
    (nothing reloads code in production), tracebacks only in the log."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", address, "--server.port", str(settings.dashboard_port),
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--server.runOnSave", "false", "--browser.gatherUsageStats", "false",
        "--client.showErrorDetails", "type", "--client.toolbarMode", "viewer",
        "--global.developmentMode", "false",
    ]


def status(settings: Settings) -> DashboardStatus:
    pid = read_pid(pid_file(settings))
    return DashboardStatus(pid is not None, pid, url(settings), log_file(settings))


def up(settings: Settings, timeout_s: float = 60.0) -> DashboardStatus:
    """Start the server in the background (idempotent) and wait until it answers."""
    current = status(settings)
    if current.running:
        return current
    port = settings.dashboard_port
    if not port_is_free("127.0.0.1", port):
        raise UserError(
            f"Port {port} is taken, so the dashboards cannot start there. Free it or set "
            "ECOM_DASHBOARD_PORT to another port.")
    for folder in (settings.run_dir, settings.log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    with open(log_file(settings), "ab") as out:
        proc = subprocess.Popen(
            command(settings), env=settings.subprocess_env(), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=settings.run_dir)
    pid_file(settings).write_text(f"{proc.pid}\n")
    _wait_healthy(settings, proc, timeout_s)
    return DashboardStatus(True, proc.pid, url(settings), log_file(settings))


def down(settings: Settings) -> bool:
    """Stop the server `up` started; True if one was running."""
    pid = read_pid(pid_file(settings))
    pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    terminate_group(pid, timeout=15)  # its own session: streamlit and anything it started
    return True


def _wait_healthy(settings: Settings, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    health = url(settings, "_stcore/health")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_file(settings).unlink(missing_ok=True)
            raise UserError(f"The dashboard server exited with code {proc.returncode} while "
                            f"starting; see {log_file(settings)}.")
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise UserError(f"The dashboards did not answer on {health} within {timeout_s:.0f} s; see "
                    f"{log_file(settings)} (stop them with `ecom dashboard down`).")


def print_urls(state: DashboardStatus) -> None:
    console.print(f"dashboards:  {state.url}  (pid {state.pid})")
    for page in PAGES:
        console.print(f"  {page:<11} {state.url}{page}")
    console.print(f"log:         {state.log_file}")


@dashboard_app.command("up")
def dashboard_up() -> None:
    """Serve the dashboards in the background on 127.0.0.1:ECOM_DASHBOARD_PORT."""
    settings = load_settings()
    console.print(f"starting the dashboards on port {settings.dashboard_port} ...")
    print_urls(up(settings))


@dashboard_app.command("down")
def dashboard_down() -> None:
    """Stop the dashboards started by `ecom dashboard up`."""
    stopped = down(load_settings())
    console.print("stopped the dashboards" if stopped else "the dashboards were not running")


@dashboard_app.command("status")
def dashboard_status() -> None:
    """Show whether the dashboards run, their URLs and log file."""
    state = status(load_settings())
    if state.running:
        print_urls(state)
    else:
        console.print(f"dashboards: stopped (`ecom dashboard up` serves them at {state.url})")
        console.print(f"log:        {state.log_file}")


@dashboard_app.command("serve")
def dashboard_serve(
    address: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 in a "
                                "container, published to the host's loopback)."),
) -> None:
    """Serve the dashboards in the foreground (Ctrl-C stops them): what a container runs."""
    settings = load_settings()
    cmd = command(settings, address)
    os.execve(cmd[0], cmd, settings.subprocess_env())
