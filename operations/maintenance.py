"""One maintenance run: Kafka retention checked, the daily backup taken and old ones
expired, raw days archived, everything past its retention pruned.

The steps run in that order and the DAG `ecommerce_maintenance` runs them as tasks in the
same order: nothing is archived or pruned unless the day's backup succeeded, so the state
before any deletion can always be restored. Each step is a function of (settings, action
log, day) that records its actions and raises a UserError when one fails.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import ensure_retention
from ecom.stack import backup
from operations import archive, retention
from operations.actions import Action, ActionLog

Progress = Callable[[str], None]
STEPS = ("kafka_retention", "backup", "expire_backups", "archive", "prune")
#: steps that delete data: skipped when the backup before them failed
DELETING = ("archive", "prune")
DAY_MS = 24 * 3600 * 1000


def _quiet(_line: str) -> None:
    pass


def _days(ms: int | None) -> str:
    return "none" if ms is None else f"{ms / DAY_MS:g} d"


def kafka_retention(settings: Settings, log: ActionLog, day: date,
                    progress: Progress = _quiet) -> None:
    """Check each topic's retention.ms and set it where it differs (not in a dry run)."""
    with log.track("kafka_retention", settings.kafka_bootstrap_servers) as summary:
        checks = ensure_retention(settings, apply=not log.dry_run)
        summary.rows = len(checks)
        summary.detail = "; ".join(
            f"{c.topic} {_days(c.now_ms)}" + (f" (was {_days(c.found_ms)})" if c.changed else "")
            + ("" if c.holds else f" - wanted {_days(c.wanted_ms)}") for c in checks)
        if settings.kafka_mode == "embedded":
            summary.detail += " (tansu stores retention.ms, never deletes by it)"
        wrong = [c.topic for c in checks if not c.holds]
        if wrong and not log.dry_run:
            summary.status = "failed"
            raise UserError(f"The broker does not keep the retention asked of {', '.join(wrong)}"
                            f": {summary.detail}.")
        if not log.dry_run:
            summary.status = "checked"


def _backups_off(settings: Settings) -> str:
    if settings.pg_mode != "embedded":
        return "external PostgreSQL: back it up with its own tooling"
    if not settings.backup_enabled:
        return "ECOM_BACKUP_ENABLED=false"
    return ""


def take_backup(settings: Settings, log: ActionLog, day: date,
                progress: Progress = _quiet) -> None:
    """The daily backup: full when the newest full is ECOM_BACKUP_FULL_EVERY_DAYS old,
    differential otherwise."""
    with log.track("backup", "pgbackrest") as entry:
        if off := _backups_off(settings):
            entry.status, entry.detail = "skipped", off
            return
        if log.dry_run:
            repo = backup.repository(settings)
            kind = backup.choose_kind("auto", repo.backups, datetime.now(UTC),
                                      settings.backup_full_every_days)
            entry.detail = f"would take a {kind} backup"
            return
        taken = backup.take_backup(settings, "auto", log=progress)
        entry.bytes = taken.repo_bytes
        entry.detail = (f"{taken.kind} backup {taken.label} (database "
                        f"{taken.database_bytes / 1e6:,.0f} MB, in the repository "
                        f"{taken.repo_bytes / 1e6:,.0f} MB)")


def expire_backups(settings: Settings, log: ActionLog, day: date,
                   progress: Progress = _quiet) -> None:
    """Expire the backups beyond ECOM_BACKUP_RETENTION_FULL full ones."""
    with log.track("expire_backups", "pgbackrest") as entry:
        if off := _backups_off(settings):
            entry.status, entry.detail = "skipped", off
            return
        if log.dry_run:
            fulls = [b for b in backup.repository(settings).backups if b.kind == "full"]
            gone = fulls[:-settings.backup_retention_full]
            entry.rows = len(gone)
            entry.detail = f"would expire {len(gone)} full backup(s) and what depends on them"
            return
        expired = backup.expire(settings)
        entry.rows = len(expired)
        entry.detail = (f"expired {', '.join(expired)}" if expired else
                        f"nothing to expire (keeping {settings.backup_retention_full} full)")


def archive_raw(settings: Settings, log: ActionLog, day: date,
                progress: Progress = _quiet) -> None:
    """Archive the raw days older than ECOM_ARCHIVE_AFTER_DAYS; one action per day."""
    status = {"archived": "done", "held": "held", "dry_run": "dry_run"}

    def record(outcome: archive.DayOutcome) -> None:
        detail = outcome.detail
        if outcome.part:
            detail = f"{outcome.part}, {outcome.written:,} rows written" + (
                f"; {detail}" if detail else "")
        log.record(Action("archive", f"raw.{outcome.table} {outcome.day}",
                          status[outcome.status], outcome.rows, outcome.bytes,
                          detail=detail))

    started = datetime.now(UTC)
    try:
        outcomes = archive.archive(settings, day, dry_run=log.dry_run, progress=progress,
                                   on_day=record)
    except UserError as exc:
        log.record(Action("archive", archive.archive_url(settings), "failed",
                          detail=str(exc), started_at=started))
        raise
    if not outcomes:
        log.record(Action("archive", archive.archive_url(settings),
                          "dry_run" if log.dry_run else "done", 0, 0,
                          detail=f"no raw day older than {settings.archive_after_days} days",
                          started_at=started))


def prune(settings: Settings, log: ActionLog, day: date, progress: Progress = _quiet) -> None:
    """Delete ops logs, realtime windows and mart days past their retention."""
    for rule in retention.rules():
        with log.track("prune", rule.relation) as entry:
            done = retention.prune(settings, rule, day, dry_run=log.dry_run)
            entry.rows, entry.bytes = done.rows, done.bytes
            entry.detail = (f"before {done.cutoff} "
                            f"({retention.retention_days(settings, rule.group)} days)")
            if not done.exists:
                entry.status, entry.detail = "skipped", "not built yet"


STEP_FUNCTIONS: dict[str, Callable[[Settings, ActionLog, date, Progress], None]] = {
    "kafka_retention": kafka_retention,
    "backup": take_backup,
    "expire_backups": expire_backups,
    "archive": archive_raw,
    "prune": prune,
}


def run(settings: Settings, day: date, *, dry_run: bool = False, run_id: str | None = None,
        progress: Progress = _quiet,
        on_action: Callable[[Action], None] | None = None) -> ActionLog:
    """Every step in order; a failed step is recorded and the next ones still run, except
    that archive and prune are skipped when the backup failed."""
    run_id = run_id or f"cli__{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}"
    log = ActionLog(settings, run_id, day, dry_run=dry_run, on_record=on_action)
    backup_failed = False
    for name in STEPS:
        if backup_failed and name in DELETING:
            log.record(Action(name, "-", "skipped",
                              detail="the backup before it failed: nothing is deleted"))
            continue
        progress(f"{name} ...")
        try:
            STEP_FUNCTIONS[name](settings, log, day, progress)
        except UserError:
            backup_failed = backup_failed or name == "backup"
    return log
