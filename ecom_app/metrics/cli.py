"""`ecom metrics serve|prometheus`: the warehouse exporter, and a local Prometheus."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from typing import Annotated

import typer
from rich.console import Console

from ecom.config import Settings, load_settings
from ecom.errors import UserError
from ecom.metrics_http import MetricsServer, serve_registry
from ecom.ports import port_answers
from ecom_app.metrics import local_prometheus
from ecom_app.metrics.exporter import WarehouseCollector, exporter_registry

console = Console()

metrics_app = typer.Typer(
    help="Prometheus metrics: the warehouse exporter, and a local Prometheus with the rules.",
    no_args_is_help=True)

PortOption = Annotated[int | None, typer.Option(
    "--port", help="Port to serve on (default ECOM_EXPORTER_PORT).", min=1, max=65535)]
HostOption = Annotated[str | None, typer.Option(
    "--host", help="Address to bind (default ECOM_METRICS_HOST).")]
CacheOption = Annotated[float, typer.Option(
    "--cache-seconds", min=0, help="Reuse one round of queries for this long.")]


def _settings(port: int | None, host: str | None) -> Settings:
    settings = load_settings()
    changes = {k: v for k, v in {"exporter_port": port, "metrics_host": host}.items()
               if v is not None}
    return settings.replace(**changes) if changes else settings


def _start_exporter(settings: Settings,
                    cache_seconds: float) -> tuple[MetricsServer, WarehouseCollector]:
    registry, collector = exporter_registry(settings, cache_seconds)
    server = serve_registry(registry, settings.metrics_host, settings.exporter_port,
                            setting="ECOM_EXPORTER_PORT (or --port)")
    return server, collector


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


@metrics_app.command("serve")
def serve(port: PortOption = None, host: HostOption = None,
          cache_seconds: CacheOption = 10.0) -> None:
    """Serve the warehouse exporter at /metrics until Ctrl-C.

    Gates per layer and day, source freshness, reject ratio, the DAG's last run, mart rows,
    PostgreSQL and its busiest statements: queried as the monitor role when scraped.
    """
    settings = _settings(port, host)
    server, collector = _start_exporter(settings, cache_seconds)
    console.print(f"warehouse exporter: {server.url} (as {settings.pg_monitor_user}, "
                  f"{settings.redacted_dsn('monitor')}); Ctrl-C stops", highlight=False)
    try:
        _wait_for_signal()
    finally:
        server.close()
        collector.close()


@metrics_app.command("prometheus")
def prometheus(
    interval: Annotated[float, typer.Option(
        "--interval", min=1, help="Scrape and rule evaluation interval, seconds.")] = 15.0,
    exporter: Annotated[bool, typer.Option(
        "--exporter/--no-exporter",
        help="Also serve the warehouse exporter from this process (off when `ecom metrics "
             "serve` already runs).")] = True,
) -> None:
    """Run a local Prometheus with the project's alert rules until Ctrl-C.

    Debian's prometheus binary, against the embedded stack: it scrapes the exporter and,
    when ECOM_STREAM_METRICS_PORT is set, the streaming job.
    """
    settings = load_settings()
    if port_answers("127.0.0.1", settings.prometheus_port):
        raise UserError(f"Port {settings.prometheus_port} already answers: stop what runs there "
                        "or set ECOM_PROMETHEUS_PORT.")
    server: MetricsServer | None = None
    collector: WarehouseCollector | None = None
    if exporter:
        server, collector = _start_exporter(settings, cache_seconds=min(10.0, interval))
        console.print(f"warehouse exporter: {server.url}", highlight=False)
    child = local_prometheus.start(settings, interval)
    try:
        time.sleep(1.0)
        if child.poll() is not None:
            raise UserError(f"Prometheus exited at start (code {child.returncode}); see "
                            f"{local_prometheus.home(settings) / 'prometheus.log'}.")
        console.print(f"Prometheus: http://127.0.0.1:{settings.prometheus_port} (alerts: "
                      f"/alerts, rules {local_prometheus.RULES_FILE}); data and log in "
                      f"{local_prometheus.home(settings)}; Ctrl-C stops", highlight=False)
        if not settings.stream_metrics_port:
            console.print("the stream is not scraped: set ECOM_STREAM_METRICS_PORT (and run "
                          "`ecom ingest stream`) to include it", highlight=False)
        _wait_for_signal()
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if server is not None and collector is not None:
            server.close()
            collector.close()
