"""PostgreSQL connections for the project's roles, with user-readable connection errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions

from ecom.config import ROLES, Role, Settings
from ecom.errors import UserError


def connect(
    settings: Settings,
    role: Role = "admin",
    *,
    database: str | None = None,
    autocommit: bool = False,
) -> psycopg2.extensions.connection:
    """Open a connection as one of ROLES; raise UserError with a fix when it cannot."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    try:
        conn = psycopg2.connect(settings.dsn(role, database), connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise UserError(_explain(settings, role, str(exc))) from exc
    conn.autocommit = autocommit
    return conn


#: psycopg2's words for a server that is not (yet) accepting connections: worth a retry,
#: unlike a refused login or a missing database
_NOT_READY = ("Connection refused", "the database system is starting up",
              "the database system is shutting down", "could not connect to server",
              "timeout expired", "Name or service not known", "No route to host",
              "server closed the connection unexpectedly")


def connect_waiting(settings: Settings, role: Role = "admin", *, wait_s: float,
                    **kwargs: object) -> psycopg2.extensions.connection:
    """`connect`, retrying for up to `wait_s` seconds (backoff 0.5 s doubling to 5 s) while
    the server is not accepting connections yet (a container that just started); any
    other failure, or the last one, raises as `connect` does."""
    deadline = time.monotonic() + wait_s
    pause = 0.5
    while True:
        try:
            return connect(settings, role, **kwargs)  # type: ignore[arg-type]
        except UserError as exc:
            cause = str(exc.__cause__ or "")
            if time.monotonic() + pause > deadline or not any(w in cause for w in _NOT_READY):
                raise
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


@contextmanager
def connection(settings: Settings, role: Role = "admin", **kwargs: object) -> Iterator[
    psycopg2.extensions.connection
]:
    """`with connection(settings, "loader") as conn:` commits on success, always closes."""
    conn = connect(settings, role, **kwargs)  # type: ignore[arg-type]
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _explain(settings: Settings, role: str, error: str) -> str:
    where = settings.redacted_dsn(role)
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    if tls := _explain_tls(settings, where, error):
        return tls
    if "password authentication failed" in error or "no password supplied" in error:
        return (
            f"PostgreSQL refused the {role} login at {where} ({first}). "
            f"Check ECOM_PG_{role.upper()}_USER / ECOM_PG_{role.upper()}_PASSWORD, "
            "or run `ecom stack up` to create the embedded cluster's roles."
        )
    if "does not exist" in error:
        return (
            f"PostgreSQL at {where} answered but {first}. "
            "Run `ecom stack up` (embedded) or `ecom warehouse migrate` (external) to create it."
        )
    return (
        f"Cannot reach PostgreSQL at {where} ({first}). "
        "Start the embedded stack with `ecom stack up`, or point ECOM_PG_HOST / ECOM_PG_PORT "
        "at a running server."
    )


def _explain_tls(settings: Settings, where: str, error: str) -> str | None:
    """One sentence for each way TLS to the warehouse fails, or None if it is not TLS."""
    ca = settings.sslrootcert or "libpq's default (~/.postgresql/root.crt)"
    if "no encryption" in error and "pg_hba.conf" in error:
        return (
            f"PostgreSQL at {where} accepts TLS connections only, and this one was plain TCP "
            f"(ECOM_PG_SSLMODE={settings.sslmode}): set ECOM_PG_SSLMODE=verify-full (or unset "
            "it for the embedded stack)."
        )
    if "certificate verify failed" in error:
        return (
            f"PostgreSQL's certificate at {where} is not signed by the CA in {ca}: point "
            "ECOM_PG_SSLROOTCERT at the CA that signed the server's certificate (the embedded "
            "stack's is <data dir>/tls/ca.crt)."
        )
    if "root certificate file" in error and "does not exist" in error:
        return (
            f"The CA file {ca} to verify PostgreSQL at {where} does not exist: run `ecom "
            "stack up` (it creates the embedded stack's CA) or set ECOM_PG_SSLROOTCERT."
        )
    if "does not match host name" in error:
        return (
            f"PostgreSQL's certificate at {where} does not name the host "
            f"{settings.pg_host}: connect by a name the certificate carries, or run `ecom "
            "stack up` to re-issue the embedded stack's certificate for ECOM_PG_HOST."
        )
    if "server does not support SSL" in error:
        return (
            f"PostgreSQL at {where} does not offer TLS but ECOM_PG_SSLMODE={settings.sslmode} "
            "requires it: enable ssl on the server, or set ECOM_PG_SSLMODE=prefer for a "
            "server you trust on a private network."
        )
    return None
