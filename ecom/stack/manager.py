"""`ecom stack up|down|status`: bring the whole embedded stack up or down, idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import describe, ensure_topics
from ecom.stack import broker, postgres
from ecom.stack.secrets import ensure_secrets
from ecom.warehouse.migrate import migrate


@dataclass
class StackStatus:
    postgres: str
    kafka: str
    topics: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def up(settings: Settings) -> tuple[Settings, StackStatus]:
    """Start what is embedded, then initialise both services. Returns settings with secrets."""
    settings = ensure_secrets(settings) if settings.pg_mode == "embedded" else settings
    for d in (settings.data_dir, settings.run_dir, settings.log_dir):
        d.mkdir(parents=True, exist_ok=True)
    notes = []
    if settings.pg_mode == "embedded":
        started = postgres.start(settings)
        notes.append("postgres started" if started else "postgres already running")
        postgres.ensure_database(settings)
        notes.append(postgres.ensure_audit(settings))
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
    return StackStatus(pg, kafka, topics)
