"""Reading the marts for the dashboards: as `reader`, read-only, one sentence per failure.

A few pooled connections (opened as `reader` through `ecom.db`, so a refused login or an
unreachable server is the same sentence as everywhere else), each read-only with a
statement timeout and without parallel workers (see `_take`). Results come back as pandas
DataFrames with numerics as floats (what charts and formatting want; revenue sums keep
their cents). A connection the server
dropped (restart, idle timeout) is replaced once, transparently.

Every failure is a `UserError` the page shows as one sentence: `NoData` when the marts do
not exist yet (an empty warehouse), `WarehouseUnavailable` when PostgreSQL cannot be
reached or refuses the login.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg2
import psycopg2.errors
import psycopg2.extensions

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError

STATEMENT_TIMEOUT_S = 30
MAX_IDLE_CONNECTIONS = 4
NO_DATA = "No data yet: run `make demo` (or the daily pipeline) to fill the warehouse."

#: numeric -> float on the dashboards' connections only
_NUMERIC_AS_FLOAT = psycopg2.extensions.new_type(
    psycopg2.extensions.DECIMAL.values, "ECOM_DASHBOARD_NUMERIC",
    lambda value, _cur: None if value is None else float(value))


class NoData(UserError):
    """The marts a page reads do not exist or hold nothing yet."""


class WarehouseUnavailable(UserError):
    """PostgreSQL cannot be reached, or refuses the reader's login."""


@dataclass(frozen=True)
class Query:
    """One statement a page runs: a name (for messages and the bench) and its SQL, with
    psycopg2 named parameters (`%(start)s`)."""

    name: str
    sql: str


@dataclass(frozen=True)
class Executed:
    """A statement as it ran (kept when tracing: the bench re-runs it in PostgreSQL)."""

    query: Query
    params: Mapping[str, Any]
    seconds: float
    rows: int


@dataclass
class Warehouse:
    """Pooled read-only `reader` connections to the warehouse."""

    settings: Settings
    trace: list[Executed] | None = None
    _idle: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def frame(self, query: Query, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one query and return its rows."""
        return self.frames([query], params)[query.name]

    def frames(self, queries: Sequence[Query],
               params: Mapping[str, Any] | None = None) -> dict[str, pd.DataFrame]:
        """Run `queries` in order on one connection; name -> rows."""
        return {name: pd.DataFrame.from_records(rows, columns=columns)
                for name, (columns, rows) in self._results(queries, params).items()}

    def rows(self, query: Query, params: Mapping[str, Any] | None = None
             ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one query; (column names, row tuples), for a page that builds its own
        frames (the realtime page, every few seconds)."""
        return self._results([query], params)[query.name]

    def _results(self, queries: Sequence[Query], params: Mapping[str, Any] | None
                 ) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
        params = dict(params or {})
        while True:
            conn, pooled = self._take()
            try:
                out = {q.name: self._run(conn, q, params) for q in queries}
            except psycopg2.OperationalError as exc:
                _close(conn)
                if pooled:  # an idle connection the server dropped: try a fresh one
                    continue
                raise WarehouseUnavailable(_lost(self.settings, exc)) from None
            except BaseException:
                _close(conn)
                raise
            self._give(conn)
            return out

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)

    # ---- connections ----------------------------------------------------------------
    def _take(self) -> tuple[Any, bool]:
        """(connection, whether it came from the pool)."""
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
        try:
            conn = connect(self.settings, "reader")
        except UserError as exc:
            raise WarehouseUnavailable(str(exc)) from None
        psycopg2.extensions.register_type(_NUMERIC_AS_FLOAT, conn)
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            # no parallel workers: the pages' statements read indexed ranges or small marts
            # (milliseconds), and starting workers costs 10-20 ms on a small machine; the
            # planner cannot see that, since a bound taken from a subquery is unknown to it
            cur.execute("set statement_timeout = %s; set max_parallel_workers_per_gather = 0; "
                        "set application_name = 'ecom-dashboard'", (f"{STATEMENT_TIMEOUT_S}s",))
        return conn, False

    def _give(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS and not conn.closed:
                self._idle.append(conn)
                return
        _close(conn)

    def _run(self, conn: Any, query: Query, params: dict[str, Any]
             ) -> tuple[list[str], list[tuple[Any, ...]]]:
        started = time.perf_counter()
        try:
            with conn.cursor() as cur:
                cur.execute(query.sql, params)
                columns = [d.name for d in cur.description]
                rows = cur.fetchall()
        except (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName) as exc:
            raise NoData(f"{NO_DATA} ({_first_line(exc)})") from None
        except psycopg2.errors.UndefinedColumn as exc:
            raise UserError(
                f"The marts are older than the dashboards ({_first_line(exc)}): run `dbt "
                "build` (or the pipeline) to rebuild them.") from None
        except psycopg2.errors.InsufficientPrivilege as exc:
            raise UserError(
                f"The {self.settings.pg_reader_user} role may not read what the "
                f"{query.name} query needs ({_first_line(exc)}). The marts grant it SELECT "
                "when dbt builds them: run `dbt build` (or the pipeline) again.") from None
        except psycopg2.errors.QueryCanceled:
            raise UserError(
                f"The dashboard's {query.name} query took longer than {STATEMENT_TIMEOUT_S} s "
                "and was cancelled; narrow the date range.") from None
        except psycopg2.OperationalError:
            raise
        except psycopg2.Error as exc:
            raise UserError(
                f"The dashboard's {query.name} query failed: {_first_line(exc)}.") from None
        if self.trace is not None:
            self.trace.append(Executed(query, dict(params), time.perf_counter() - started,
                                       len(rows)))
        return columns, rows


def _close(conn: Any) -> None:
    with contextlib.suppress(psycopg2.Error):
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def _lost(settings: Settings, exc: BaseException) -> str:
    return (f"Lost the connection to PostgreSQL at {settings.redacted_dsn('reader')} "
            f"({_first_line(exc)}). Is the warehouse up (`ecom stack status`)?")
