"""COPY ... FROM STDIN streamed from a background thread, so rendering the next chunk and
PostgreSQL's COPY of the previous one overlap."""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

#: bytes psycopg2 asks the feeder for per read
COPY_READ_SIZE = 8 << 20


class _Aborted(Exception):
    pass


class CopyFeeder:
    """COPY ... FROM STDIN on a background thread, fed with text chunks from this thread."""

    _END = object()
    _ABORT = object()

    def __init__(self, cursor: Any, sql: str) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._buf = ""
        self._pos = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(cursor, sql), daemon=True)
        self._thread.start()

    def _run(self, cursor: Any, sql: str) -> None:
        try:
            cursor.copy_expert(sql, self, size=COPY_READ_SIZE)
        except BaseException as exc:  # surfaced by finish()/abort() on the caller's thread
            self.error = exc
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def read(self, size: int = -1) -> str:
        while self._pos >= len(self._buf):
            item = self._queue.get()
            if item is self._END:
                return ""
            if item is self._ABORT:
                raise _Aborted("batch aborted")
            self._buf, self._pos = item, 0
        end = len(self._buf) if size < 0 else self._pos + size
        out = self._buf[self._pos:end]
        self._pos = end
        return out

    def write(self, text: str) -> None:
        if self.error is not None:
            raise self.error
        if text:
            while True:
                try:
                    self._queue.put(text, timeout=0.5)
                    return
                except queue.Full:
                    if self.error is not None:
                        raise self.error from None

    def finish(self) -> None:
        self._queue.put(self._END)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(self._ABORT, timeout=5)
            self._thread.join(timeout=30)
