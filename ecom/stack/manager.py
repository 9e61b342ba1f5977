"""`ecom stack up|down|status`: bring the whole embedded stack up or down, idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import TopicRetention, describe, ensure_retention, ensure_topics
from ecom.stack import backup, broker, postgres
from ecom.stack.secrets import ensure_secrets
from ecom.warehouse.migrate import migrate


@dataclass
class StackStatus:
    postgres: str
    kafka: str
    topics: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    backups: str = ""


def up(settings: Settings) -> tuple[Settings, StackStatus]:
    """Start what is embedded, then initialise both services. Returns settings with secrets."""
    settings = ensure_secrets(settings) if settings.pg_mode == "embedded" else settings
    for d in (settings.data_dir, settings.run_dir, settings.log_dir):
        d.mkdir(parents=True, exist_ok=True)
    notes = []
    if settings.pg_mode == "embedded":
        started = postgres.start(settings)
        notes.append("postgres started" if started else "postgres already running")
        pending = [] if started else postgres.reload_settings(settings)
        notes += pending
        postgres.ensure_database(settings)
        notes.append(postgres.ensure_audit(settings))
        if settings.backup_enabled:
            backup.ensure_stanza(settings)
            if not pending:
                notes.append("WAL archiving to pgBackRest on (`ecom warehouse backup` takes "
                             "a base backup, the maintenance DAG one daily)")
        # (pgaudit's own note is the line above)
        if missing := [lib for lib in postgres.missing_preload_libraries(settings)
                       if lib != "pgaudit"]:
            notes.append(f"postgres has not loaded {', '.join(missing)} (it started before "
                         "they were configured): `ecom stack down && ecom stack up` loads them")
    applied = migrate(settings)
    notes.append(f"migrations applied: {', '.join(applied) or 'none pending'}")
    if settings.kafka_mode == "embedded":
        started = broker.start(settings)
        notes.append("broker started" if started else "broker already running")
    topics = ensure_topics(settings)
    created = [t.name for t in topics if t.created]
    notes.append(f"topics created: {', '.join(created) or 'none (all present)'}")
    try:
        notes.append(retention_note(settings, ensure_retention(settings)))
    except UserError as exc:  # e.g. no AlterConfigs right on a real cluster: not fatal here
        notes.append(f"topic retention not checked: {exc}")
    status = status_of(settings)
    status.notes = notes
    return settings, status


def down(settings: Settings) -> list[str]:
    """Stop what `up` started (embedded services only)."""
    stopped = []
    if settings.kafka_mode == "embedded" and broker.stop(settings):
        stopped.append("broker")
    if settings.pg_mode == "embedded":
        try:
            if postgres.stop(settings):
                stopped.append("postgres")
        except UserError:
            pass  # no binaries: nothing of ours can be running
    return stopped


def retention_note(settings: Settings, checks: list[TopicRetention]) -> str:
    """One line on the topics' retention (and what the embedded broker does with it)."""
    day = 24 * 3600 * 1000
    parts = []
    for c in checks:
        now = "none reported" if c.now_ms is None else f"{c.now_ms / day:g} d"
        parts.append(f"{c.topic} {now}" + (" (set now)" if c.changed else "")
                     + ("" if c.holds else f", wanted {c.wanted_ms / day:g} d"))
    line = "topic retention: " + "; ".join(parts)
    if settings.kafka_mode == "embedded":
        line += (" - tansu stores retention.ms but its memory storage never deletes by it: "
                 "a real Kafka enforces it")
    return line


def backups_line(settings: Settings) -> str:
    """Backups and WAL archiving of the embedded cluster, in one line for `stack status`."""
    if settings.pg_mode != "embedded":
        return "external server: back it up with its own tooling"
    if not settings.backup_enabled:
        return "off (ECOM_BACKUP_ENABLED=false)"
    try:
        repo = backup.repository(settings)
    except UserError as exc:
        return f"unknown: {exc}"
    if not repo.backups:
        text = "none yet (`ecom warehouse backup`)"
    else:
        newest = repo.backups[-1]
        text = (f"{len(repo.backups)}, newest {newest.kind} {newest.stopped_at:%Y-%m-%d %H:%M} "
                f"UTC, restorable from {repo.backups[0].stopped_at:%Y-%m-%d %H:%M} UTC")
    if postgres.is_running(settings):
        archiver = backup.archive_status(settings)
        if archiver.failed_count and (archiver.last_archived_at is None or (
                archiver.last_failed_at and archiver.last_failed_at > archiver.last_archived_at)):
            text += f"; WAL archiving FAILING (last failure {archiver.last_failed_wal})"
        elif archiver.last_archived_wal:
            text += f"; WAL archived up to {archiver.last_archived_wal}"
    return text


def status_of(settings: Settings) -> StackStatus:
    if settings.pg_mode == "embedded":
        where = f"{settings.pg_host}:{settings.pg_port}, data {postgres.cluster_dir(settings)}"
        pg = f"running ({where})" if postgres.is_running(settings) else "stopped"
    else:
        pg = f"external ({settings.redacted_dsn()})"
    topics: dict[str, int] = {}
    if settings.kafka_mode == "embedded":
        pid = broker.running_pid(settings)
        kafka = (f"running (tansu pid {pid}, {settings.kafka_bootstrap_servers}, memory storage)"
                 if pid else "stopped")
    else:
        kafka = f"external ({settings.kafka_bootstrap_servers})"
    if kafka != "stopped":
        try:
            topics = describe(settings)
        except UserError as exc:
            kafka += f" - not answering: {exc}"
    backups = backups_line(settings) if pg.startswith("running") else ""
    return StackStatus(pg, kafka, topics, backups=backups)
