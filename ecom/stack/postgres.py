"""A project-private PostgreSQL cluster started from the system's server binaries.

`initdb` refuses to run as root, so when we are root the cluster belongs to the `postgres`
OS user (Debian's packages create it) and every server command runs through `runuser`.
Only TCP on 127.0.0.1 is used (no Unix socket), over TLS only (`hostssl`; the server's
certificate is signed by the stack's private CA, see `ecom.stack.tls`), with scram-sha-256
passwords. pgaudit writes an audit trail (DDL, role and privilege changes, writes) into
the server log, each line prefixed with the role and database.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from ecom.config import Settings
from ecom.errors import UserError
from ecom.ports import port_answers, port_is_free
from ecom.stack import tls, wal_archive

#: libraries the server loads at start (`shared_preload_libraries`), each used only if the
#: system has it installed; other features append theirs. A change takes effect when the
#: cluster restarts: `ecom stack up` names what a running one lacks.
PRELOAD_LIBRARIES: list[str] = [
    "pgaudit",
    "pg_stat_statements",  # per-statement statistics: ops.top_statements, `ecom metrics serve`
]

SERVER_SETTINGS = """
# --- ecom embedded cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
shared_buffers = '512MB'
work_mem = '64MB'
maintenance_work_mem = '256MB'
max_wal_size = '4GB'
checkpoint_timeout = '15min'
# lz4, not pglz: pglz made inserts into the marts' uuid-keyed indexes (a full-page
# image per index page after each checkpoint) ~2x slower; lz4 costs almost nothing
wal_compression = lz4
# large values (oversize dead letters, up to 64 KiB each) are TOASTed with lz4, not pglz:
# it cut COPYing a batch's rejects from 170 to 50 ms
default_toast_compression = lz4
# the embedded cluster starts empty: without this, each new 16 MB WAL segment is written
# full of zeros before use (until segments are recycled), a second write of every WAL byte:
# it cost ingestion 4 us of PostgreSQL CPU per event on a fresh cluster. The filesystem
# allocates on write instead (a full disk then stops the server rather than failing one
# statement: keep an eye on free space)
wal_init_zero = off
max_connections = 200
log_min_messages = warning
log_min_error_statement = error
timezone = 'UTC'
# TLS only (pg_hba.conf rejects plain TCP); certificate signed by <data dir>/tls/ca.crt
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
# audit trail (pgaudit, loaded below when installed): DDL, GRANT/REVOKE/role changes and
# every INSERT/UPDATE/DELETE/TRUNCATE/COPY FROM, one "AUDIT: SESSION,..." line per
# statement in the server log; `ecom warehouse audit` reads them. Parameters are not
# logged; role passwords are set as SCRAM verifiers, never in clear
pgaudit.log = 'ddl, role, write'
pgaudit.log_parameter = off
# a write names the table it wrote (one entry per relation)
pgaudit.log_relation = on
# a statement's text once, not again on each of its sub-statements' lines
pgaudit.log_statement_once = on
# who did it: time, pid, then role@database/application on every session's line
log_line_prefix = '%m [%p] %q%u@%d/%a '
# pg_stat_statements (loaded below): statements normalised (constants out), kept per query
# id. Not utility commands: they keep their literals (`alter role ... password '...'`)
pg_stat_statements.max = 5000
pg_stat_statements.track = top
pg_stat_statements.track_utility = off
"""

HBA = """# ecom embedded cluster: TLS connections with scram-sha-256 passwords, nothing else
hostssl all all all scram-sha-256
hostnossl all all all reject
"""


@dataclass(frozen=True)
class PgBinaries:
    initdb: str
    pg_ctl: str


def find_binaries(bin_dir: str = "") -> PgBinaries:
    """initdb and pg_ctl from `bin_dir` if given, else PATH, else Debian's
    /usr/lib/postgresql/<version>/bin."""
    if bin_dir:
        initdb, pg_ctl = Path(bin_dir) / "initdb", Path(bin_dir) / "pg_ctl"
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return PgBinaries(str(initdb), str(pg_ctl))
        raise UserError(
            f"ECOM_PG_BIN_DIR={bin_dir} holds no executable initdb and pg_ctl. Point it at a "
            "PostgreSQL bin directory (e.g. /usr/lib/postgresql/15/bin) or unset it."
        )
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return PgBinaries(initdb, pg_ctl)
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{bindir}/initdb", os.X_OK) and os.access(f"{bindir}/pg_ctl", os.X_OK):
            return PgBinaries(f"{bindir}/initdb", f"{bindir}/pg_ctl")
    raise UserError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them with "
        "`sudo apt-get install postgresql` (the Makefile's `make setup` does this), or set "
        "ECOM_PG_MODE=external and point ECOM_PG_HOST/ECOM_PG_PORT at a running server."
    )


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if _is_root() else cmd


def _postgres_can_reach(path: Path) -> bool:
    probe = subprocess.run(
        _as_postgres(["test", "-x", str(path)]), capture_output=True, check=False
    )
    return probe.returncode == 0


def cluster_dir(settings: Settings) -> Path:
    """Where the cluster lives: `<data dir>/postgres`, or, when root and the postgres user
    cannot traverse the data dir (e.g. a checkout under /root), a private dir in /var/tmp."""
    preferred = settings.data_dir / "postgres"
    if not _is_root():
        return preferred
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if _postgres_can_reach(settings.data_dir):
        return preferred
    digest = hashlib.sha1(str(settings.data_dir).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"ecom-postgres-{digest}"


def _chown_to_postgres(path: Path) -> None:
    if _is_root():
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def log_file(settings: Settings) -> Path:
    """The server log (and audit trail). The server writes it as its own OS user: it lives
    inside the cluster dir."""
    return cluster_dir(settings) / "server.log"


def is_running(settings: Settings) -> bool:
    pgdata = cluster_dir(settings)
    if not (pgdata / "PG_VERSION").exists():
        return False
    bins = find_binaries(settings.pg_bin_dir)
    status = subprocess.run(
        _as_postgres([bins.pg_ctl, "status", "-D", str(pgdata)]), capture_output=True, check=False
    )
    return status.returncode == 0


SETTINGS_FILE = "ecom.conf"
INCLUDE_LINE = f"include_if_exists = '{SETTINGS_FILE}'"


def _lib_dir(settings: Settings) -> Path:
    """The server's library directory (Debian: /usr/lib/postgresql/<v>/lib, next to bin)."""
    return Path(find_binaries(settings.pg_bin_dir).initdb).resolve().parent.parent / "lib"


def preload_libraries(settings: Settings) -> list[str]:
    """The PRELOAD_LIBRARIES this system has installed (a missing one would stop the
    server from starting)."""
    lib_dir = _lib_dir(settings)
    return [name for name in PRELOAD_LIBRARIES if (lib_dir / f"{name}.so").exists()]


def server_settings(settings: Settings, pgdata: Path) -> str:
    libraries = ", ".join(preload_libraries(settings))
    return (SERVER_SETTINGS + f"shared_preload_libraries = '{libraries}'\n"
            + wal_archive.server_settings(settings, pgdata))


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    _chown_to_postgres(path)
    return True


def write_server_settings(settings: Settings, pgdata: Path) -> bool:
    """(Re)write the project's server settings, pg_hba.conf and TLS certificate, so a
    cluster made by an older version of the project gets the current ones at its next
    start (the include comes last: it wins). With backups on, also pgBackRest's
    configuration, which `archive_command` reads. True when anything changed."""
    changed = _write_if_changed(pgdata / SETTINGS_FILE, server_settings(settings, pgdata))
    changed |= _write_if_changed(pgdata / "pg_hba.conf", HBA)
    conf = pgdata / "postgresql.conf"
    if INCLUDE_LINE not in conf.read_text():
        with open(conf, "a") as out:
            out.write(f"\n{INCLUDE_LINE}\n")
        changed = True
    owner = None
    if _is_root():
        entry = pwd.getpwnam("postgres")
        owner = (entry.pw_uid, entry.pw_gid)
    ca = tls.ensure_ca(settings.tls_dir)
    changed |= tls.ensure_server_certificate(
        ca, pgdata / "server.crt", pgdata / "server.key", settings.pg_host, owner)
    if settings.backup_enabled:  # after the CA: pgBackRest gets a copy of it
        write_backup_config(settings, pgdata)
    return changed


def write_backup_config(settings: Settings, pgdata: Path) -> None:
    """pgBackRest's directories and configuration, owned by the cluster's OS user."""
    home = wal_archive.backup_dir(settings, pgdata)
    for path in (home, wal_archive.repo_path(settings, pgdata), home / "log", home / "lock",
                 home / "spool"):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o750)
        _chown_to_postgres(path)
    conf = wal_archive.config_path(settings, pgdata)
    conf.write_text(wal_archive.config_text(settings, pgdata))
    conf.chmod(0o640)
    _chown_to_postgres(conf)
    # pgBackRest runs as the cluster's OS user, which may not reach the data dir's CA: it
    # verifies the server's certificate with a copy of its own
    if settings.sslrootcert and Path(settings.sslrootcert).is_file():
        _write_if_changed(wal_archive.backup_ca_path(settings, pgdata),
                          Path(settings.sslrootcert).read_text())


def reload_settings(settings: Settings) -> list[str]:
    """Make a running server re-read its settings files; returns a note for each change
    that waits for a restart (switching WAL archiving on or off)."""
    wanted = "on" if settings.backup_enabled else "off"
    conn = psycopg2.connect(settings.dsn("admin", "postgres"), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_reload_conf(), current_setting('archive_mode')")
            _, archive_mode = cur.fetchone()
    finally:
        conn.close()
    if archive_mode == wanted:
        return []
    return [f"WAL archiving switches {wanted} at the next restart of PostgreSQL "
            "(`ecom stack down && ecom stack up`; a running `ecom ingest stream` stops)"]


def init_cluster(settings: Settings) -> Path:
    """initdb once; later calls return the existing cluster (with current settings)."""
    pgdata = cluster_dir(settings)
    if (pgdata / "PG_VERSION").exists():
        if write_server_settings(settings, pgdata) and is_running(settings):
            reload(settings)
        return pgdata
    bins = find_binaries(settings.pg_bin_dir)
    if _is_root():
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise UserError(
                "Running as root, but there is no `postgres` OS user to own the cluster "
                "(initdb refuses root). Install Debian's postgresql package or run as a normal "
                "user."
            ) from exc
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    _chown_to_postgres(pgdata)
    pwfile = pgdata.parent / f".{pgdata.name}.pwfile"
    pwfile.write_text(settings.password("admin") + "\n")
    pwfile.chmod(0o600)
    _chown_to_postgres(pwfile)
    try:
        result = subprocess.run(
            _as_postgres([
                bins.initdb, "-D", str(pgdata), "-U", settings.pg_admin_user,
                f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]),
            capture_output=True, text=True, check=False,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise UserError(
            f"initdb failed for {pgdata}: {result.stderr.strip().splitlines()[-1:]}. "
            "Remove that directory and run `ecom stack up` again."
        )
    write_server_settings(settings, pgdata)
    return pgdata


def reload(settings: Settings) -> None:
    """Make a running server re-read its settings, pg_hba.conf and certificate (TLS and
    pg_hba changes apply at once; shared_preload_libraries only at the next restart)."""
    bins = find_binaries(settings.pg_bin_dir)
    subprocess.run(_as_postgres([bins.pg_ctl, "reload", "-D", str(cluster_dir(settings))]),
                   capture_output=True, check=False)
    # the postmaster re-reads asynchronously: wait until a client with these settings
    # gets in (e.g. over TLS, which a cluster made by an older version just turned on)
    deadline = time.monotonic() + 10
    while True:
        time.sleep(0.2)
        try:
            psycopg2.connect(settings.dsn("admin", "postgres"), connect_timeout=3).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                return  # the caller's next connection explains what is wrong


def start(settings: Settings) -> bool:
    """Start the cluster if it is not running. Returns True if this call started it."""
    pgdata = init_cluster(settings)
    if is_running(settings):
        return False
    if not port_is_free(settings.pg_host, settings.pg_port):
        raise UserError(
            f"Port {settings.pg_port} on {settings.pg_host} is already taken by another process, "
            "so the embedded PostgreSQL cannot start. Stop that process or set ECOM_PG_PORT to a "
            "free port (e.g. in .env)."
        )
    bins = find_binaries(settings.pg_bin_dir)
    server_log = log_file(settings)
    result = subprocess.run(
        _as_postgres([
            bins.pg_ctl, "start", "-D", str(pgdata), "-l", str(server_log), "-w", "-t", "60",
            "-o", f"-p {settings.pg_port} -c listen_addresses={settings.pg_host}",
        ]),
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        tail = _tail(server_log)
        raise UserError(
            f"PostgreSQL did not start on {settings.pg_host}:{settings.pg_port}: {tail} "
            f"(full log: {server_log})."
        )
    wait_ready(settings)
    return True


def stop(settings: Settings, mode: str = "fast") -> bool:
    """Stop the cluster if running. Returns True if it was stopped by this call.

    `mode` is pg_ctl's shutdown mode; "immediate" is a crash (recovery at the next start).
    """
    if not is_running(settings):
        return False
    bins = find_binaries(settings.pg_bin_dir)
    subprocess.run(
        _as_postgres([bins.pg_ctl, "stop", "-D", str(cluster_dir(settings)), "-m", mode, "-w"]),
        capture_output=True, check=False,
    )
    return True


def kill(settings: Settings) -> bool:
    """kill -9 the server and every process it started, as a crash would (disaster
    drills). Returns False when it was not running."""
    pid_file = cluster_dir(settings) / "postmaster.pid"
    try:
        postmaster = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    children = [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _parent_pid(p) == postmaster]
    for pid in (postmaster, *children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{postmaster}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _parent_pid(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def wait_ready(settings: Settings, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if port_answers(settings.pg_host, settings.pg_port):
            try:
                psycopg2.connect(settings.dsn("admin", "postgres"), connect_timeout=3).close()
                return
            except psycopg2.OperationalError as exc:
                last = str(exc).strip()
                if "starting up" not in last:
                    break
        time.sleep(0.2)
    raise UserError(
        f"PostgreSQL at {settings.redacted_dsn()} is not answering ({last or 'timeout'}). "
        "Check the server log under the data dir, or your ECOM_PG_* settings."
    )


def ensure_database(settings: Settings) -> None:
    """Create the warehouse database if missing (connects to the `postgres` maintenance db)."""
    conn = psycopg2.connect(settings.dsn("admin", "postgres"), connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (settings.pg_database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(
                    sql.Identifier(settings.pg_database)))
    finally:
        conn.close()


def ensure_audit(settings: Settings) -> str:
    """Create the pgaudit extension in the warehouse when the server loaded it; return a
    note for `ecom stack up` when the audit trail is not on (and how to turn it on)."""
    conn = psycopg2.connect(settings.dsn("admin"), connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 'pgaudit' = any(string_to_array(replace("
                        "current_setting('shared_preload_libraries'), ' ', ''), ','))")
            loaded = cur.fetchone()[0]
            if loaded:
                cur.execute("create extension if not exists pgaudit")
                return "audit trail on (pgaudit)"
            cur.execute("select count(*) from pg_settings where pending_restart")
            pending = cur.fetchone()[0]
    finally:
        conn.close()
    if pending:
        return ("audit trail off until PostgreSQL restarts: run `ecom stack down` and "
                "`ecom stack up`")
    return ("audit trail off: pgaudit is not installed (`sudo apt-get install "
            "postgresql-15-pgaudit`, then `ecom stack down` and `ecom stack up`)")


def missing_preload_libraries(settings: Settings) -> list[str]:
    """The installed PRELOAD_LIBRARIES the running server has not loaded (it started before
    they were configured: a restart loads them)."""
    conn = psycopg2.connect(settings.dsn("admin", "postgres"), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("select setting from pg_settings where name = 'shared_preload_libraries'")
            loaded = {lib.strip() for lib in cur.fetchone()[0].split(",")}
    finally:
        conn.close()
    return [lib for lib in preload_libraries(settings) if lib not in loaded]


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no server log"


def destroy(settings: Settings) -> None:
    """Stop the cluster and delete its directory, its backups and the clusters that
    restores moved aside (private test stacks)."""
    stop(settings)
    pgdata = cluster_dir(settings)
    for path in (pgdata, wal_archive.backup_dir(settings, pgdata),
                 *pgdata.parent.glob(f"{pgdata.name}.before-restore-*"),
                 pgdata.with_name(pgdata.name + ".restoring")):
        shutil.rmtree(path, ignore_errors=True)
