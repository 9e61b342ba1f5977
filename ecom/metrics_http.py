"""Serving a Prometheus registry over HTTP (`/metrics`), for the stream and the exporter.

prometheus_client's own threaded WSGI server: scrapes are answered on daemon threads, so
the process's work (a micro-batch, a query) never waits for one, and a scrape never waits
for the work beyond the locks of the values it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from ecom.errors import UserError


@dataclass
class MetricsServer:
    host: str
    port: int
    _server: Any
    _thread: Any

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_registry(registry: CollectorRegistry, host: str, port: int, *,
                   setting: str) -> MetricsServer:
    """Serve `registry` on host:port; UserError naming `setting` if the port is taken."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise UserError(
            f"Cannot serve metrics on {host}:{port} ({exc.strerror or exc}): set {setting} to "
            "a free port.") from None
    return MetricsServer(host, int(server.server_port), server, thread)
