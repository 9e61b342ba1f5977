"""Versioned, idempotent SQL migrations for the landing schema (raw, ops) and the roles.

Files `migrations/NNNN_name.sql` are applied in order, each in its own transaction, and
recorded in `ops.schema_migrations` with a checksum. Role names are substituted for
`{{loader}}`-style placeholders; role passwords are (re)set from the settings on every run,
so they never appear in a committed file. They are sent as SCRAM-SHA-256 verifiers computed
by libpq on this side, never in clear: the server's audit trail and statement logs see the
`ALTER ROLE` statement, and must not see a password.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql
from psycopg2.extensions import encrypt_password

from ecom.config import Settings
from ecom.db import connect_waiting
from ecom.errors import UserError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LANE_ROLES = ("loader", "transformer", "reader", "monitor")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version, _, name = path.stem.partition("_")
        found.append(Migration(version, name, path))
    return found


def render(text: str, settings: Settings, conn: object) -> str:
    """Replace role/database placeholders with safely quoted identifiers and literals."""
    replacements = {"database": settings.pg_database}
    for role in LANE_ROLES:
        replacements[role] = settings.user(role)
    for key, value in replacements.items():
        text = text.replace("{{" + key + "_literal}}", sql.Literal(value).as_string(conn))
        text = text.replace("{{" + key + "}}", sql.Identifier(value).as_string(conn))
    return text


def migrate(settings: Settings, wait_s: float = 0.0) -> list[str]:
    """Apply pending migrations and set role passwords. Returns the versions applied now.

    `wait_s`: retry the first connection that long while the server is still starting."""
    conn = connect_waiting(settings, "admin", wait_s=wait_s)
    applied_now: list[str] = []
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext('ecom_migrations'))")
            cur.execute("create schema if not exists ops")
            cur.execute(
                """create table if not exists ops.schema_migrations (
                       version text primary key, name text not null, checksum text not null,
                       applied_at timestamptz not null default now())"""
            )
            cur.execute("select version, checksum from ops.schema_migrations")
            done = dict(cur.fetchall())
        for migration in discover():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise UserError(
                        f"Migration {migration.path.name} changed after it was applied. "
                        "Add a new migration file instead of editing an applied one."
                    )
                continue
            with conn, conn.cursor() as cur:
                cur.execute("select pg_advisory_xact_lock(hashtext('ecom_migrations'))")
                cur.execute("select 1 from ops.schema_migrations where version = %s",
                            (migration.version,))
                if cur.fetchone():
                    continue
                cur.execute(render(migration.path.read_text(), settings, conn))
                cur.execute(
                    "insert into ops.schema_migrations (version, name, checksum) "
                    "values (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            applied_now.append(migration.version)
        set_role_passwords(settings, conn)
    finally:
        conn.close()
    return applied_now


def set_role_passwords(settings: Settings, conn: object) -> None:
    with conn, conn.cursor() as cur:  # type: ignore[attr-defined]
        for role in LANE_ROLES:
            user = settings.user(role)
            password = settings.password(role)
            if not password:
                raise UserError(
                    f"No password for the {role} role: set ECOM_PG_{role.upper()}_PASSWORD "
                    "(`ecom stack up` generates them for the embedded stack)."
                )
            verifier = encrypt_password(password, user, conn, "scram-sha-256")
            cur.execute(
                sql.SQL("alter role {} with login password {}").format(
                    sql.Identifier(user), sql.Literal(verifier)
                )
            )
