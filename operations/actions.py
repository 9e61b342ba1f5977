"""The maintenance log: one row per action in `ops.maintenance_actions` (what was done to
what, rows, bytes, seconds), written as each action ends so a crash keeps what was done."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ecom.config import Settings
from ecom.db import connection
from ecom.errors import UserError


@dataclass
class Action:
    """One action; `status`: done, dry_run, held (left for a later run, with the reason),
    skipped, checked or failed."""

    action: str
    target: str
    status: str = "done"
    rows: int | None = None
    bytes: int | None = None
    seconds: float = 0.0
    detail: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class ActionLog:
    """The actions of one run, each inserted into `ops.maintenance_actions` as it ends."""

    settings: Settings
    run_id: str
    logical_date: date | None
    dry_run: bool = False
    on_record: Callable[[Action], None] | None = None
    actions: list[Action] = field(default_factory=list)

    @contextmanager
    def track(self, action: str, target: str) -> Iterator[Action]:
        """Time one action; a UserError marks it failed (and propagates)."""
        entry = Action(action, target, status="dry_run" if self.dry_run else "done")
        started = time.monotonic()
        try:
            yield entry
        except UserError as exc:
            entry.status, entry.detail = "failed", str(exc)
            raise
        finally:
            entry.seconds = round(time.monotonic() - started, 3)
            self.record(entry)

    def record(self, entry: Action) -> None:
        self.actions.append(entry)
        with connection(self.settings, "admin") as conn, conn.cursor() as cur:
            cur.execute(
                "insert into ops.maintenance_actions (run_id, logical_date, action, target, "
                "status, rows, bytes, seconds, detail, started_at) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (self.run_id, self.logical_date, entry.action, entry.target, entry.status,
                 entry.rows, entry.bytes, entry.seconds, entry.detail or None,
                 entry.started_at))
        if self.on_record:
            self.on_record(entry)

    @property
    def failed(self) -> list[Action]:
        return [a for a in self.actions if a.status == "failed"]


def recent_actions(settings: Settings, limit: int = 50,
                   run_id: str | None = None) -> list[dict[str, Any]]:
    """The newest actions (of one run, or of all), oldest first."""
    where, params = ("where run_id = %s", [run_id]) if run_id else ("", [])
    with connection(settings, "admin") as conn, conn.cursor() as cur:
        cur.execute(
            "select * from (select action_id, run_id, logical_date, action, target, status, "
            f"rows, bytes, seconds, detail, logged_at from ops.maintenance_actions {where} "
            "order by action_id desc limit %s) newest order by action_id", [*params, limit])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
