"""Backups of the embedded cluster with pgBackRest: stanza, base backups, the list with
the restorable time range, expiry, and a point-in-time restore.

WAL is archived continuously (`archive_command`, see `wal_archive`), so a restore can
reach any moment between the oldest backup's end and the newest archived segment; the
RPO is the archive's lag, bounded by `archive_timeout`.

A restore never damages what is there before it has proved itself: it checks that the
repository belongs to this cluster and that the WAL chain has no gap, restores into a
sibling directory when a cluster exists, lets PostgreSQL replay to the target there, and
only then stops the old cluster, moves it aside and puts the restored one in its place.
Run as root, pgBackRest runs as the cluster's OS user (`postgres`), like the server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2

from ecom.config import Settings
from ecom.errors import UserError
from ecom.ports import free_port, read_pid
from ecom.stack import postgres, wal_archive
from ecom.stack.postgres import _as_postgres, _chown_to_postgres

Log = Callable[[str], None]
SEGMENTS_PER_LOG = 0x100  # 16 MB segments (initdb's default): 4 GiB per log id
#: the pgBackRest commands that connect to the cluster (the others reject --pg1-port)
CONNECTING = ("backup", "check", "stanza-create", "stanza-upgrade")
WAL_FILE_RE = re.compile(
    r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?-[0-9a-f]{40}(\.(lz4|gz|zst|bz2))?$")
HISTORY_RE = re.compile(r"^\s*(\d+)\s+([0-9A-F]+)/([0-9A-F]+)", re.IGNORECASE)
SEGMENT_BYTES = 16 * 1024 * 1024


def _quiet(_line: str) -> None:
    pass


# ---- running pgBackRest ----------------------------------------------------------------

def _require_embedded(settings: Settings, what: str) -> Path:
    if settings.pg_mode != "embedded":
        raise UserError(
            f"`ecom warehouse {what}` manages the embedded cluster's pgBackRest backups, but "
            "ECOM_PG_MODE=external: back up an external server with its own tooling (the "
            "provider's snapshots and point-in-time recovery, or pgBackRest on that host)."
        )
    if not settings.backup_enabled:
        raise UserError(
            f"Backups are off (ECOM_BACKUP_ENABLED=false), so there is nothing to {what}. "
            "Set ECOM_BACKUP_ENABLED=true and restart the stack (`ecom stack down && ecom "
            "stack up`) to archive WAL and take backups."
        )
    return postgres.cluster_dir(settings)


def _error_line(text: str) -> str:
    for line in text.splitlines():
        if "ERROR:" in line:
            return line.split("ERROR:", 1)[1].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def run_pgbackrest(settings: Settings, command: str, *args: str, pgdata: Path | None = None,
                   timeout: float = 7200) -> subprocess.CompletedProcess[str]:
    """Run one pgBackRest command for the cluster's stanza; UserError when it fails."""
    pgdata = pgdata or postgres.cluster_dir(settings)
    conf = wal_archive.config_path(settings, pgdata)
    if not conf.exists():
        postgres.write_backup_config(settings, pgdata)
    env = dict(os.environ)
    # pgBackRest has no password option: libpq takes the host and password from the
    # environment (the embedded cluster listens on TCP only)
    env.update(PGHOST=settings.pg_host, PGPASSWORD=settings.password("admin"),
               PGSSLMODE=settings.sslmode)
    if settings.sslrootcert:  # the copy the cluster's OS user can read
        env["PGSSLROOTCERT"] = str(wal_archive.backup_ca_path(settings, pgdata))
    # the repository and port of these settings, whatever the file (written at `stack up`
    # for the server's archive_command) says
    port = [f"--pg1-port={settings.pg_port}"] if command in CONNECTING else []
    cmd = _as_postgres([wal_archive.pgbackrest_binary(), f"--config={conf}",
                        f"--stanza={wal_archive.STANZA}",
                        f"--repo1-path={wal_archive.repo_path(settings, pgdata)}",
                        *port, *args, command])
    proc = subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=timeout,
                          check=False, cwd="/")
    if proc.returncode != 0:
        raise UserError(_explain(settings, pgdata, command, proc.stderr + proc.stdout))
    return proc


def _explain(settings: Settings, pgdata: Path, command: str, output: str) -> str:
    error = _error_line(output)
    repo = wal_archive.repo_path(settings, pgdata)
    if "system identifier" in error or "do not match the database" in error:
        return (f"The backup repository {repo} belongs to another PostgreSQL cluster "
                f"(pgBackRest: {error}). Point ECOM_BACKUP_REPO at this warehouse's own "
                "repository, or move that one away and run `ecom stack up` to start a new one.")
    if "archive_mode" in error or "archive_command" in error:
        return (f"pgBackRest {command} needs WAL archiving, which the running server does not "
                f"do ({error}). Restart the stack with ECOM_BACKUP_ENABLED=true "
                "(`ecom stack down && ecom stack up`).")
    log_dir = wal_archive.backup_dir(settings, pgdata) / "log"
    return f"pgBackRest {command} failed: {error} (its log: {log_dir})."


def ensure_stanza(settings: Settings) -> None:
    """Create the stanza in the repository (idempotent; the cluster must be running)."""
    _require_embedded(settings, "backup")
    run_pgbackrest(settings, "stanza-create", timeout=120)


# ---- what the repository holds ---------------------------------------------------------

@dataclass(frozen=True)
class Backup:
    label: str
    kind: str  # full | diff | incr
    started_at: datetime
    stopped_at: datetime
    database_bytes: int
    repo_bytes: int
    wal_start: str
    wal_stop: str


@dataclass(frozen=True)
class Repository:
    path: Path
    system_id: int | None
    backups: list[Backup]
    wal_min: str | None
    wal_max: str | None
    wal_max_archived_at: datetime | None  # when the newest segment reached the repository

    @property
    def restorable_from(self) -> datetime | None:
        return self.backups[0].stopped_at if self.backups else None


def _epoch(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def repository(settings: Settings) -> Repository:
    """The stanza's backups (oldest first) and WAL range (`pgbackrest info`)."""
    pgdata = _require_embedded(settings, "backups")
    repo = wal_archive.repo_path(settings, pgdata)
    proc = run_pgbackrest(settings, "info", "--output=json", timeout=120)
    stanzas = json.loads(proc.stdout or "[]")
    stanza: dict[str, Any] = stanzas[0] if stanzas else {}
    dbs = stanza.get("db") or []
    backups = [
        Backup(
            label=b["label"], kind=b["type"],
            started_at=_epoch(b["timestamp"]["start"]), stopped_at=_epoch(b["timestamp"]["stop"]),
            database_bytes=int(b["info"]["size"]),
            repo_bytes=int(b["info"]["repository"]["size"]),
            wal_start=b["archive"]["start"], wal_stop=b["archive"]["stop"],
        )
        for b in stanza.get("backup") or []
    ]
    archives = [a for a in stanza.get("archive") or [] if a.get("max")]
    wal_min = min((a["min"] for a in archives), default=None)
    wal_max = max((a["max"] for a in archives), default=None)
    archived_at = None
    if wal_max is not None:
        archived_at = _newest_wal_mtime(repo, wal_max)
    return Repository(repo, int(dbs[-1]["system-id"]) if dbs else None, backups, wal_min,
                      wal_max, archived_at)


def _wal_files(repo: Path) -> Iterable[tuple[str, Path]]:
    """(24-hex segment name, file) of every complete WAL segment in the repository."""
    for log_dir in repo.glob(f"archive/{wal_archive.STANZA}/*/[0-9A-F]*"):
        if not log_dir.is_dir():
            continue
        for entry in log_dir.iterdir():
            match = WAL_FILE_RE.match(entry.name)
            if match and not match.group(4):  # a .partial segment is not the whole segment
                yield "".join(match.groups()[:3]), entry


def timeline_starts(repo: Path) -> list[tuple[int, int]]:
    """(timeline, first segment number) along the newest timeline's history: the timeline
    a restore follows (`--target-timeline=latest`). Without history, timeline 1 from 0."""
    histories = {int(f.name[:8], 16): f
                 for f in repo.glob(f"archive/{wal_archive.STANZA}/*/*.history")}
    if not histories:
        return [(1, 0)]
    latest = max(histories)
    switches = [(int(m.group(1)), (int(m.group(2), 16) << 32 | int(m.group(3), 16))
                 // SEGMENT_BYTES)
                for line in histories[latest].read_text().splitlines()
                if (m := HISTORY_RE.match(line))]
    return parse_switches(switches, latest)


def parse_switches(switches: list[tuple[int, int]], latest: int) -> list[tuple[int, int]]:
    """History lines (parent timeline, switch segment) -> (timeline, first segment)."""
    if not switches:
        return [(latest, 0)]
    starts = [(switches[0][0], 0)]
    for i, (_, segment) in enumerate(switches):
        child = switches[i + 1][0] if i + 1 < len(switches) else latest
        starts.append((child, segment))
    return starts


def timeline_at(starts: list[tuple[int, int]], number: int) -> int:
    return max((s for s in starts if s[1] <= number), key=lambda s: s[1])[0]
def _newest_wal_mtime(repo: Path, name: str) -> datetime | None:
    times = [f.stat().st_mtime for n, f in _wal_files(repo) if n == name]
    return datetime.fromtimestamp(max(times), UTC) if times else None


def segment_number(name: str) -> int:
    """A WAL segment's position in the log, whatever its timeline (16 MB segments)."""
    return int(name[8:16], 16) * SEGMENTS_PER_LOG + int(name[16:24], 16)


def segment_name(timeline: int, number: int) -> str:
    return f"{timeline:08X}{number // SEGMENTS_PER_LOG:08X}{number % SEGMENTS_PER_LOG:08X}"


def wal_gaps(names: Iterable[str], start: str, starts: list[tuple[int, int]]) -> list[str]:
    """The segments a restore from `start` along the timelines `starts` needs and the
    archive lacks, up to the newest one it holds on that path."""
    have = set(names)
    on_path = [segment_number(n) for n in have
               if int(n[:8], 16) == timeline_at(starts, segment_number(n))]
    first = segment_number(start)
    missing = []
    for number in range(first, max(on_path, default=first) + 1):
        name = segment_name(timeline_at(starts, number), number)
        if name not in have:
            missing.append(name)
    return missing


# ---- taking and expiring backups --------------------------------------------------------

def choose_kind(kind: str, backups: list[Backup], now: datetime, full_every_days: int) -> str:
    """`auto`: full when there is none or the newest full is `full_every_days` old,
    differential otherwise (a restore then needs two backups at most)."""
    if kind != "auto":
        return kind
    fulls = [b for b in backups if b.kind == "full"]
    if not fulls or now - fulls[-1].started_at >= timedelta(days=full_every_days):
        return "full"
    return "diff"


def take_backup(settings: Settings, kind: str = "auto", log: Log = _quiet) -> Backup:
    """Take one backup (`full`, `diff`, `incr` or `auto`) of the running cluster."""
    _require_embedded(settings, "backup")
    if not postgres.is_running(settings):
        raise UserError("PostgreSQL is not running, so there is nothing to back up: start it "
                        "with `ecom stack up`.")
    ensure_stanza(settings)
    before = repository(settings).backups
    chosen = choose_kind(kind, before, datetime.now(UTC), settings.backup_full_every_days)
    log(f"taking a {chosen} backup with pgBackRest ...")
    run_pgbackrest(settings, "backup", f"--type={chosen}")
    after = repository(settings).backups
    new = [b for b in after if b.label not in {x.label for x in before}]
    if not new:
        raise UserError("pgBackRest reported success but listed no new backup; see its log "
                        f"in {wal_archive.backup_dir(settings, postgres.cluster_dir(settings))}.")
    return new[-1]


def expire(settings: Settings) -> list[str]:
    """Expire backups beyond ECOM_BACKUP_RETENTION_FULL (and the WAL only they needed);
    returns the labels removed."""
    _require_embedded(settings, "expire backups")
    before = {b.label for b in repository(settings).backups}
    run_pgbackrest(settings, "expire", f"--repo1-retention-full={settings.backup_retention_full}")
    after = {b.label for b in repository(settings).backups}
    return sorted(before - after)


# ---- the WAL archive's state (the RPO) ------------------------------------------------------

@dataclass(frozen=True)
class ArchiveStatus:
    current_wal: str
    last_archived_wal: str | None
    last_archived_at: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_at: datetime | None


def archive_status(settings: Settings) -> ArchiveStatus:
    """pg_stat_archiver of the running server, and the segment it writes now."""
    conn = psycopg2.connect(settings.dsn("admin", "postgres"), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_walfile_name(pg_current_wal_lsn()), last_archived_wal, "
                        "last_archived_time, failed_count, last_failed_wal, last_failed_time "
                        "from pg_stat_archiver")
            row = cur.fetchone()
    finally:
        conn.close()
    return ArchiveStatus(row[0], row[1], row[2], int(row[3]), row[4], row[5])


def is_archived(settings: Settings, wal_file: str) -> bool:
    """Whether the segment `wal_file` is in the repository."""
    repo = wal_archive.repo_path(settings, postgres.cluster_dir(settings))
    pattern = f"archive/{wal_archive.STANZA}/*/{wal_file[:16]}/{wal_file}-*"
    return any(repo.glob(pattern))


def wait_archived(settings: Settings, wal_file: str, timeout_s: float = 600) -> float:
    """Block until the segment `wal_file` is in the repository; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if is_archived(settings, wal_file):
            return time.monotonic() - started
        time.sleep(0.1)
    raise UserError(f"WAL segment {wal_file} was not archived within {timeout_s:.0f} s: check "
                    "`ecom warehouse backups` and the server log.")


# ---- restore --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestoreResult:
    backup: Backup
    target: datetime | None
    seconds_to_first_query: float
    replaced: Path | None  # the previous data directory, moved aside


def system_id(settings: Settings, pgdata: Path) -> int:
    """The cluster's system identifier, from its pg_control (running or not)."""
    pg_ctl = Path(postgres.find_binaries(settings.pg_bin_dir).pg_ctl)
    controldata = next((str(d / "pg_controldata") for d in (pg_ctl.parent,
                        Path(os.path.realpath(pg_ctl)).parent)
                        if (d / "pg_controldata").exists()), "pg_controldata")
    proc = subprocess.run(_as_postgres([controldata, "-D", str(pgdata)]), text=True,
                          capture_output=True, check=False, env={**os.environ, "LC_ALL": "C"})
    match = re.search(r"Database system identifier:\s*(\d+)", proc.stdout)
    if not match:
        raise UserError(f"Cannot read the cluster's control file in {pgdata}: "
                        f"{_error_line(proc.stderr)}.")
    return int(match.group(1))


def choose_backup(backups: list[Backup], target: datetime | None) -> Backup:
    """The newest backup, or the newest that ended before `target`."""
    if not backups:
        raise UserError("The repository holds no backup yet: take one with `ecom warehouse "
                        "backup` (the maintenance DAG takes one daily).")
    if target is None:
        return backups[-1]
    # pgBackRest stamps whole seconds: a backup counts once its next second has begun
    usable = [b for b in backups if b.stopped_at + timedelta(seconds=1) <= target]
    if not usable:
        raise UserError(
            f"No backup ended before {target.isoformat()}: the oldest ended at "
            f"{backups[0].stopped_at.isoformat()}, so the cluster cannot be restored to an "
            "earlier moment.")
    return usable[-1]


def check_wal_chain(repo: Repository, backup: Backup, target: datetime | None) -> None:
    """Refuse a restore the archived WAL cannot carry to its target: a missing segment
    after the backup, or a target later than the newest archived WAL."""
    gaps = wal_gaps((name for name, _ in _wal_files(repo.path)), backup.wal_start,
                    timeline_starts(repo.path))
    if gaps:
        raise UserError(
            f"WAL segment {gaps[0]} is missing from the archive in {repo.path} "
            f"({len(gaps)} segment(s) missing after backup {backup.label}), so a restore "
            "would stop short of its target; nothing was changed. Restore from an older "
            "backup whose WAL is complete, or check the archive (`pgbackrest verify`).")
    if target is not None and repo.wal_max_archived_at is not None \
            and target > repo.wal_max_archived_at:
        raise UserError(
            f"{target.isoformat()} is after the newest archived WAL (archived at "
            f"{repo.wal_max_archived_at.isoformat()}), so the restore could not reach it; "
            "nothing was changed. Pick an earlier --to-time, or omit it for the newest state.")


def restore(settings: Settings, to_time: datetime | None = None, *, force: bool = False,
            log: Log = _quiet) -> RestoreResult:
    """Restore the cluster from the repository, to `to_time` or to the newest archived WAL."""
    pgdata = _require_embedded(settings, "restore")
    started = time.monotonic()
    running = postgres.is_running(settings)
    if running and not force:
        raise UserError(
            f"PostgreSQL is running on port {settings.pg_port}: a restore replaces the whole "
            "cluster, so stop it first (`ecom stack down`) or pass --force to replace it (it "
            "is moved aside, not deleted).")
    repo = repository(settings)
    exists = (pgdata / "PG_VERSION").exists()
    if exists and repo.system_id is not None and system_id(settings, pgdata) != repo.system_id:
        raise UserError(
            f"The backups in {repo.path} were taken from another PostgreSQL cluster (system id "
            f"{repo.system_id}, this warehouse's is {system_id(settings, pgdata)}); nothing was "
            "changed. Point ECOM_BACKUP_REPO at this warehouse's repository.")
    if running:
        _flush_wal(settings, log)
        repo = repository(settings)
    backup = choose_backup(repo.backups, to_time)
    check_wal_chain(repo, backup, to_time)

    target_dir = pgdata.with_name(pgdata.name + ".restoring") if exists else pgdata
    _fresh_dir(target_dir)
    log(f"restoring backup {backup.label} ({backup.kind}, ended "
        f"{backup.stopped_at:%Y-%m-%d %H:%M:%S} UTC) into {target_dir} ...")
    args = [f"--pg1-path={target_dir}", f"--set={backup.label}", "--target-timeline=latest"]
    if to_time is not None:
        args += ["--type=time", f"--target={to_time.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f+00}",
                 "--target-action=promote"]
    try:
        run_pgbackrest(settings, "restore", *args)
        if target_dir == pgdata:  # a sibling copy keeps the settings it was backed up with
            postgres.write_server_settings(settings, target_dir)
        port = settings.pg_port if target_dir == pgdata else free_port(settings.pg_host)
        log(f"replaying WAL to {to_time.isoformat() if to_time else 'the newest archived'} ...")
        _recover(settings, target_dir, port)
    except BaseException as exc:
        _stop_dir(settings, target_dir)
        kept = _keep_log(settings, pgdata, target_dir)
        shutil.rmtree(target_dir, ignore_errors=True)
        if isinstance(exc, UserError) and kept:
            raise UserError(f"{exc} Server log of the attempt: {kept}.") from None
        raise
    replaced = None
    if target_dir != pgdata:
        _stop_dir(settings, target_dir)
        if running:
            postgres.stop(settings)
        replaced = pgdata.with_name(f"{pgdata.name}.before-restore-"
                                    f"{datetime.now(UTC):%Y%m%dT%H%M%S}")
        pgdata.rename(replaced)
        target_dir.rename(pgdata)
        postgres.write_server_settings(settings, pgdata)
        postgres.start(settings)
    _first_query(settings)
    return RestoreResult(backup, to_time, time.monotonic() - started, replaced)


def _flush_wal(settings: Settings, log: Log) -> None:
    """Before replacing a running cluster: commit a transaction (recovery to a moment stops
    at the first commit after it, so one must exist) and archive the current segment, so
    any moment up to now can be reached."""
    conn = psycopg2.connect(settings.dsn("admin", "postgres"), connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select txid_current()")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select pg_walfile_name(pg_switch_wal())")
            segment = str(cur.fetchone()[0])
    finally:
        conn.close()
    try:
        wait_archived(settings, segment, timeout_s=settings.backup_wal_timeout_seconds + 60)
    except UserError as exc:
        log(f"the running cluster's newest WAL did not reach the archive ({exc})")


def _keep_log(settings: Settings, pgdata: Path, target_dir: Path) -> Path | None:
    """Copy a failed attempt's server log into pgBackRest's log dir (the attempt's
    directory is removed)."""
    log_file = target_dir / "server.log"
    if not log_file.exists():
        return None
    kept = (wal_archive.backup_dir(settings, pgdata) / "log" /
            f"restore-{datetime.now(UTC):%Y%m%dT%H%M%S}-server.log")
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log_file, kept)
    return kept


def _fresh_dir(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        if (path / "PG_VERSION").exists() or path.name.endswith(".restoring"):
            shutil.rmtree(path)  # a restore that failed half way: never a live cluster
        else:
            path.rename(path.with_name(f"{path.name}.moved-{datetime.now(UTC):%Y%m%dT%H%M%S}"))
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    _chown_to_postgres(path)


def _pg_ctl(settings: Settings) -> str:
    return postgres.find_binaries(settings.pg_bin_dir).pg_ctl


def _stop_dir(settings: Settings, pgdata: Path) -> None:
    if (pgdata / "postmaster.pid").exists():
        subprocess.run(_as_postgres([_pg_ctl(settings), "stop", "-D", str(pgdata), "-m", "fast",
                                     "-w"]), capture_output=True, check=False)


def _recover(settings: Settings, pgdata: Path, port: int) -> None:
    """Start the restored copy and wait until recovery reached its target and promoted;
    UserError (naming the cause from its log) when it stops short. A copy beside the
    cluster pushes its new timeline's first WAL as itself (pgBackRest checks the path)."""
    log_file = pgdata / "server.log"
    options = f"-p {port} -c listen_addresses={settings.pg_host}"
    if pgdata != postgres.cluster_dir(settings):
        command = wal_archive.archive_command(settings, postgres.cluster_dir(settings),
                                              pg1_path=pgdata)
        options += f" -c {shlex.quote('archive_command=' + command)}"
    subprocess.run(_as_postgres([
        _pg_ctl(settings), "start", "-D", str(pgdata), "-l", str(log_file), "-W", "-o", options,
    ]), capture_output=True, check=False)
    dsn = settings.replace(pg_port=port).dsn("admin", "postgres")
    while True:
        time.sleep(0.2)
        if not _postmaster_alive(pgdata):
            raise UserError(_recovery_failure(log_file))
        try:
            conn = psycopg2.connect(dsn, connect_timeout=3)
        except psycopg2.OperationalError:
            continue
        try:
            with conn.cursor() as cur:
                cur.execute("select pg_is_in_recovery()")
                if not cur.fetchone()[0]:
                    return
        finally:
            conn.close()


def _postmaster_alive(pgdata: Path) -> bool:
    return read_pid(pgdata / "postmaster.pid") is not None


_CONNECTION_REFUSALS = ("the database system is not yet accepting connections",
                        "the database system is starting up",
                        "the database system is shutting down",
                        "the database system is in recovery mode")


def _recovery_failure(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    fatal = [ln.split("FATAL:", 1)[1].strip() for ln in lines if "FATAL:" in ln]
    # the refusals our own connection attempts drew while it recovered are not the cause
    causes = [f for f in fatal if not f.startswith(_CONNECTION_REFUSALS)] or fatal
    reason = causes[-1] if causes else (lines[-1].strip() if lines else "no server log")
    if "recovery ended before configured recovery target" in reason:
        reason += (": the archived WAL ends before the target (damaged or missing WAL, or no "
                   "transaction committed after the target was archived); restore to an "
                   "earlier moment, or without --to-time for the newest state")
    elif "requested recovery stop point" in reason:
        reason += ": the target is before the backup's end; pick a later one"
    return (f"The restored cluster did not recover ({reason}); the running cluster, if any, "
            "was not touched.")


def _first_query(settings: Settings) -> None:
    postgres.wait_ready(settings, timeout=600)
    conn = psycopg2.connect(settings.dsn("admin"), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from ops.schema_migrations")
            cur.fetchone()
    finally:
        conn.close()
