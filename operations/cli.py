"""`ecom maintenance run|log`, `ecom archive list|restore`, and the backup commands of
`ecom warehouse` (`backup`, `backups`, `restore`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ecom.config import load_settings
from ecom.errors import UserError
from ecom.stack import backup, postgres
from operations import archive, maintenance
from operations.actions import Action, ActionLog, recent_actions

console = Console()

maintenance_app = typer.Typer(
    help="Retention, archive and backups: what the daily DAG ecommerce_maintenance runs.",
    no_args_is_help=True)
archive_app = typer.Typer(help="The raw archive (Parquet): list it, load a day back.",
                          no_args_is_help=True)


def _say(line: str) -> None:
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def parse_day(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--date {value!r} is not a date: use YYYY-MM-DD.") from None


def parse_time(value: str) -> datetime:
    """An ISO 8601 moment; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--to-time {value!r} is not a moment: use ISO 8601, e.g. "
                        "2026-03-01T12:30:00Z (no offset means UTC).") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _size(value: int | None) -> str:
    if value is None:
        return ""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000  # type: ignore[assignment]
    return ""


def _num(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def print_actions(actions: Iterable[Action | dict[str, Any]], title: str) -> None:
    table = Table(title=title, show_header=True)
    for column in ("action", "target", "status", "rows", "bytes", "seconds", "detail"):
        table.add_column(column, justify="right" if column in ("rows", "bytes", "seconds")
                         else "left", overflow="fold")
    for a in actions:
        get = a.get if isinstance(a, dict) else lambda k, a=a: getattr(a, k)
        seconds = get("seconds")
        table.add_row(get("action"), get("target"), get("status"), _num(get("rows")),
                      _size(get("bytes")), "" if seconds is None else f"{seconds:.2f}",
                      get("detail") or "")
    console.print(table)


@maintenance_app.command("run")
def maintenance_run(
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Say what would be archived, pruned and backed up."),
    day: str | None = typer.Option(None, "--date",
                                   help="Count retention from this day (default today, UTC)."),
) -> None:
    """Check Kafka retention, take the daily backup and expire old ones, archive raw days,
    prune what is past its retention. One row per action in ops.maintenance_actions."""
    settings = load_settings()
    as_of = parse_day(day)
    if as_of > datetime.now(UTC).date():
        raise UserError(f"--date {as_of} is in the future: retention counts back from it, so "
                        "it would archive and prune data that is not old yet.")
    _say(f"maintenance as of {as_of}{' (dry run: nothing changes)' if dry_run else ''}")
    log = maintenance.run(settings, as_of, dry_run=dry_run, progress=_say)
    print_actions(log.actions, f"maintenance run {log.run_id}")
    if log.failed:
        for action in log.failed:
            _say(f"failed: {action.action} {action.target}: {action.detail}")
        raise typer.Exit(1)


@maintenance_app.command("log")
def maintenance_log(
    last: int = typer.Option(40, "--last", help="How many actions (newest)."),
    run_id: str | None = typer.Option(None, "--run", help="Only this run's actions."),
) -> None:
    """The latest actions of maintenance runs (CLI and DAG) from ops.maintenance_actions."""
    rows = recent_actions(load_settings(), last, run_id)
    if not rows:
        _say("no maintenance run yet: `ecom maintenance run`")
        return
    print_actions(rows, "ops.maintenance_actions")


@archive_app.command("list")
def archive_list() -> None:
    """The archived days: parts, rows and bytes per table and day."""
    settings = load_settings()
    days = archive.archived_days(settings)
    _say(f"archive: {archive.archive_url(settings)}")
    if not days:
        _say(f"nothing archived yet (raw days older than {settings.archive_after_days} days "
             "are, by `ecom maintenance run`)")
        return
    table = Table(show_header=True)
    for column in ("table", "day", "parts", "rows", "bytes", "archived at"):
        table.add_column(column)
    for d in days:
        table.add_row(d["table"], str(d["day"]), str(d["parts"]), _num(d["rows"]),
                      _size(d["bytes"]), f"{d['archived_at']:%Y-%m-%d %H:%M}")
    console.print(table)


@archive_app.command("restore")
def archive_restore(
    day: str = typer.Option(..., "--date", help="The archived day to load back (YYYY-MM-DD)."),
    table: str | None = typer.Option(None, "--table",
                                     help="raw_events or rejected_events (default both)."),
) -> None:
    """Load an archived day back into raw, exactly once (rows already there are kept), so
    the marts can be rebuilt from it (`dbt build --full-refresh`). The next maintenance run
    archives it again without writing it twice."""
    settings = load_settings()
    chosen = day_tables(table)
    as_day = parse_day(day)
    log = ActionLog(settings, f"cli__restore__{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}", as_day)
    with log.track("restore_archive", f"{', '.join(chosen)} {as_day}") as entry:
        restored = archive.restore_day(settings, as_day, chosen, progress=_say)
        entry.rows = sum(r.loaded for r in restored)
        entry.detail = "; ".join(f"{r.table}: {r.loaded:,} loaded, {r.present:,} already in raw"
                                 for r in restored)
    for r in restored:
        _say(f"raw.{r.table} {r.day}: {r.archived_rows:,} archived rows in {r.parts} part(s): "
             f"{r.loaded:,} loaded, {r.present:,} already in raw")


def day_tables(table: str | None) -> tuple[str, ...]:
    if table is None:
        return tuple(archive.TABLES)
    if table not in archive.TABLES:
        raise UserError(f"--table {table!r} is not archived: use one of "
                        f"{', '.join(archive.TABLES)}.")
    return (table,)


# ---- ecom warehouse backup | backups | restore ------------------------------------------------

def backup_command(
    kind: str = typer.Option("auto", "--type",
                             help="auto (full when the newest full is "
                                  "ECOM_BACKUP_FULL_EVERY_DAYS old, else diff), full, diff, "
                                  "incr."),
) -> None:
    """Take a backup of the embedded cluster with pgBackRest (WAL is archived continuously,
    so any later moment can be restored)."""
    if kind not in ("auto", "full", "diff", "incr"):
        raise UserError(f"--type {kind!r}: use auto, full, diff or incr.")
    settings = load_settings()
    started = datetime.now(UTC)
    taken = backup.take_backup(settings, kind, log=_say)
    seconds = (datetime.now(UTC) - started).total_seconds()
    _say(f"backup {taken.label} ({taken.kind}) in {seconds:.1f} s: database "
         f"{_size(taken.database_bytes)}, {_size(taken.repo_bytes)} in the repository")


def backups_command() -> None:
    """The backups with their sizes, and the time range a restore can reach."""
    settings = load_settings()
    repo = backup.repository(settings)
    _say(f"repository: {repo.path}")
    if not repo.backups:
        _say("no backup yet: `ecom warehouse backup` (the maintenance DAG takes one daily)")
        return
    table = Table(show_header=True)
    for column in ("label", "type", "started", "ended", "database", "in repository",
                   "WAL from", "WAL to"):
        table.add_column(column, no_wrap=column == "label")
    for b in repo.backups:
        table.add_row(b.label, b.kind, f"{b.started_at:%Y-%m-%d %H:%M:%S}",
                      f"{b.stopped_at:%Y-%m-%d %H:%M:%S}", _size(b.database_bytes),
                      _size(b.repo_bytes), b.wal_start, b.wal_stop)
    console.print(table)
    newest = repo.wal_max_archived_at
    _say(f"restorable: from {repo.backups[0].stopped_at:%Y-%m-%d %H:%M:%S} UTC to "
         f"{f'{newest:%Y-%m-%d %H:%M:%S} UTC' if newest else 'the newest backup'} "
         f"(WAL {repo.wal_min} .. {repo.wal_max}; archive_timeout "
         f"{settings.backup_wal_timeout_seconds} s)")
    if postgres.is_running(settings):
        status = backup.archive_status(settings)
        if status.last_archived_at:
            lag = (datetime.now(UTC) - status.last_archived_at).total_seconds()
            _say(f"last WAL archived {lag:,.0f} s ago ({status.last_archived_wal}); "
                 f"failures: {status.failed_count}")


def restore_command(
    to_time: str | None = typer.Option(
        None, "--to-time", help="Restore the state at this moment (ISO 8601; no offset = UTC); "
                                "default: the newest archived WAL."),
    force: bool = typer.Option(False, "--force",
                               help="Replace a running cluster (it is moved aside, not "
                                    "deleted)."),
) -> None:
    """Restore the embedded cluster from its backups and archived WAL (point in time)."""
    settings = load_settings()
    target = parse_time(to_time) if to_time else None
    result = backup.restore(settings, target, force=force, log=_say)
    _say(f"restored from backup {result.backup.label} to "
         f"{result.target.isoformat() if result.target else 'the newest archived WAL'}: "
         f"first query answered {result.seconds_to_first_query:.1f} s after the restore began")
    if result.replaced:
        _say(f"the cluster it replaced is kept in {result.replaced} (delete it when satisfied)")
    _say("Kafka still holds what came after the restore point (7 days): "
         "`ecom ingest batch --from earliest --to latest` lands it again, once.")


def add_backup_commands(group: typer.Typer) -> None:
    """Register `backup`, `backups` and `restore` in the `ecom warehouse` group."""
    group.command("backup")(backup_command)
    group.command("backups")(backups_command)
    group.command("restore")(restore_command)

