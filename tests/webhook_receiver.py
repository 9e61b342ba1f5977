"""A local webhook endpoint for the notification tests (the DAG's and the CLI's)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A webhook endpoint: keeps every JSON body it answered 2xx to; `fail_next` answers
    HTTP 500 to that many posts first."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refused = 0
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    receiver.refused += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.messages.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def about(self, text: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if text in m["text"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
