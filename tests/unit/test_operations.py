"""Pure logic of the operations work: WAL segment and timeline arithmetic, which backup a
restore starts from, the server and pgBackRest settings written for the cluster, archive
checksums, part names and value conversions, retention cutoffs and rules, and the order
in which a maintenance run's steps go (nothing deleted after a failed backup)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from ecom_pipeline import maintenance as dag_steps

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_admin import TopicRetention
from ecom.stack import backup, wal_archive
from ecom.stack.manager import retention_note
from operations import archive, maintenance, retention
from operations.actions import Action, ActionLog
from operations.cli import parse_day, parse_time

# ---- WAL segments and timelines -------------------------------------------------------------


def test_segment_names_and_numbers_round_trip() -> None:
    assert backup.segment_number("000000010000000000000003") == 3
    assert backup.segment_number("0000000200000001000000FF") == 0x1FF
    assert backup.segment_name(2, 0x1FF) == "0000000200000001000000FF"
    assert backup.segment_name(1, 0x100) == "000000010000000100000000"


def test_history_lines_become_timeline_starts() -> None:
    # 00000003.history: TL1 until 0/7000098, TL2 until 0/9000000, then TL3
    starts = backup.parse_switches([(1, 7), (2, 9)], latest=3)
    assert starts == [(1, 0), (2, 7), (3, 9)]
    assert [backup.timeline_at(starts, n) for n in (0, 6, 7, 8, 9, 20)] == [1, 1, 2, 2, 3, 3]
    assert backup.parse_switches([], latest=1) == [(1, 0)]


def test_wal_gaps_follow_the_restore_timeline() -> None:
    starts = [(1, 0), (2, 7)]
    names = [backup.segment_name(1, n) for n in range(3, 10)]  # TL1 went on after the switch
    names += [backup.segment_name(2, n) for n in (7, 8, 10)]
    # TL1's own 7..9 do not count: the restore follows TL2 from segment 7
    assert backup.wal_gaps(names, backup.segment_name(1, 3), starts) == [
        backup.segment_name(2, 9)]
    names.append(backup.segment_name(2, 9))
    assert backup.wal_gaps(names, backup.segment_name(1, 3), starts) == []


def test_the_wal_file_pattern_takes_segments_only() -> None:
    sha = "a" * 40
    assert backup.WAL_FILE_RE.match(f"000000010000000000000003-{sha}.lz4")
    assert backup.WAL_FILE_RE.match(f"000000010000000000000003-{sha}")
    assert not backup.WAL_FILE_RE.match(f"000000010000000000000003-{sha}.lz4.hidden")
    assert not backup.WAL_FILE_RE.match("000000010000000000000003.00000028.backup")
    assert backup.WAL_FILE_RE.match(f"000000010000000000000005.partial-{sha}.lz4").group(4)


def _backup(label: str, kind: str, stopped: datetime) -> backup.Backup:
    return backup.Backup(label, kind, stopped - timedelta(minutes=1), stopped, 1, 1,
                         "000000010000000000000001", "000000010000000000000002")


def test_a_restore_starts_from_the_newest_backup_that_ended_before_the_target() -> None:
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    backups = [_backup("f1", "full", t0), _backup("d1", "diff", t0 + timedelta(hours=1))]
    assert backup.choose_backup(backups, None).label == "d1"
    assert backup.choose_backup(backups, t0 + timedelta(minutes=30)).label == "f1"
    # whole-second stamps: a backup counts once the next second has begun
    assert backup.choose_backup(backups, t0 + timedelta(hours=1, seconds=1)).label == "d1"
    assert backup.choose_backup(backups, t0 + timedelta(hours=1, milliseconds=500)).label \
        == "f1"
    with pytest.raises(UserError, match="No backup ended before"):
        backup.choose_backup(backups, t0 - timedelta(minutes=1))
    with pytest.raises(UserError, match="holds no backup yet"):
        backup.choose_backup([], None)


def test_auto_backups_are_full_weekly_and_differential_between() -> None:
    now = datetime(2026, 3, 8, 4, tzinfo=UTC)
    assert backup.choose_kind("auto", [], now, 7) == "full"
    recent = [_backup("f", "full", now - timedelta(days=3))]
    assert backup.choose_kind("auto", recent, now, 7) == "diff"
    old = [_backup("f", "full", now - timedelta(days=7, minutes=1))]
    assert backup.choose_kind("auto", old, now, 7) == "full"
    assert backup.choose_kind("incr", recent, now, 7) == "incr"


# ---- what the cluster is given -------------------------------------------------------------


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(data_dir=tmp_path, pg_port=5999, **changes)  # type: ignore[arg-type]


def test_wal_archiving_settings_follow_the_switch(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    off = wal_archive.server_settings(_settings(tmp_path, backup_enabled=False), pgdata)
    assert "archive_mode = off" in off
    on = wal_archive.server_settings(_settings(tmp_path, backup_wal_timeout_seconds=45), pgdata)
    assert "archive_mode = on" in on and "archive_timeout = '45s'" in on
    assert f"--config={tmp_path / 'backup' / 'pgbackrest.conf'}" in on
    assert "archive-push %p'" in on


def test_an_odd_path_is_quoted_for_the_shell_and_the_settings_file(tmp_path: Path) -> None:
    odd = tmp_path / "it's here"
    line = wal_archive.server_settings(_settings(odd), odd / "postgres")
    command = line.split("archive_command = ", 1)[1].splitlines()[0]
    assert command.startswith("'") and command.endswith("'")
    assert "it'\"'\"'s" in command.replace("''", "'")  # shlex quoting, doubled for the file


def test_pgbackrest_lives_beside_the_cluster(tmp_path: Path) -> None:
    s = _settings(tmp_path, backup_retention_full=3)
    assert wal_archive.backup_dir(s, tmp_path / "postgres") == tmp_path / "backup"
    private = Path("/var/tmp/ecom-postgres-abc")
    assert wal_archive.backup_dir(s, private) == Path("/var/tmp/ecom-postgres-abc-backup")
    text = wal_archive.config_text(s, tmp_path / "postgres")
    assert f"repo1-path={tmp_path / 'backup' / 'repo'}" in text
    assert "repo1-retention-full=3" in text and "pg1-port=5999" in text
    elsewhere = _settings(tmp_path, backup_repo="/mnt/other-disk/repo")
    assert wal_archive.repo_path(elsewhere, tmp_path / "postgres") == Path(
        "/mnt/other-disk/repo")


def test_a_wrong_backup_setting_is_one_sentence() -> None:
    with pytest.raises(UserError, match="ECOM_BACKUP_WAL_TIMEOUT_SECONDS='0' is not valid: "
                                        "it must be at least 1"):
        Settings.from_env({"ECOM_BACKUP_WAL_TIMEOUT_SECONDS": "0"})


def test_the_retention_note_says_what_the_broker_keeps() -> None:
    day = 24 * 3600 * 1000
    checks = [TopicRetention("ecommerce-events", 7 * day, 7 * day, 7 * day, False),
              TopicRetention("processed-events", 30 * day, day, 30 * day, True),
              TopicRetention("daily-aggregations", 365 * day, None, None, False)]
    note = retention_note(Settings(kafka_mode="external"), checks)
    assert note == ("topic retention: ecommerce-events 7 d; processed-events 30 d (set now); "
                    "daily-aggregations none reported, wanted 365 d")
    assert "never deletes" in retention_note(Settings(), checks)


# ---- the archive ----------------------------------------------------------------------------


def test_the_id_checksum_is_over_the_set_not_the_order() -> None:
    ids = ["0190a0b0-0000-7000-8000-000000000002", "0190a0b0-0000-7000-8000-000000000001"]
    assert archive.id_checksum(ids) == archive.id_checksum(reversed(ids))
    assert archive.id_checksum(ids) != archive.id_checksum(ids[:1])
    assert archive.id_checksum([10, 9]) == archive.id_checksum(["9", "10"])
    assert archive.part_name("ab" * 32) == "part-abababababababab.parquet"


def test_parts_are_laid_out_by_table_and_day() -> None:
    assert archive.day_dir("/a", archive.TABLES["raw_events"], date(2025, 3, 5)) == \
        "/a/raw_events/event_date=2025-03-05"
    assert archive.day_dir("s3://b/p", archive.TABLES["rejected_events"], date(2025, 3, 5)) \
        == "s3://b/p/rejected_events/received_date=2025-03-05"


def test_column_types_map_to_arrow() -> None:
    col = archive.Column
    assert col("price", "numeric", 12, 2).arrow == pa.decimal128(12, 2)
    assert col("t", "timestamp with time zone", None, None).arrow == pa.timestamp("us", "UTC")
    assert col("kafka_offset", "bigint", 64, 0).arrow == pa.int64()
    assert col("event_id", "uuid", None, None).arrow == pa.string()
    assert col("event_id", "uuid", None, None).select == "event_id::text"
    assert col("raw_data", "jsonb", None, None).select == "raw_data::text"


def test_values_are_written_in_copy_text_format() -> None:
    assert archive._copy_value(None) == "\\N"
    assert archive._copy_value("a\tb\nc\\") == "a\\tb\\nc\\\\"
    assert archive._copy_value(Decimal("1E+2")) == "100"
    assert archive._copy_value(True) == "t"
    stamp = datetime(2025, 3, 5, 1, 2, 3, 4000, tzinfo=UTC)
    assert archive._copy_value(stamp) == "2025-03-05T01:02:03.004000+00:00"


def test_an_archive_url_defaults_to_the_data_dir(tmp_path: Path) -> None:
    assert archive.archive_url(Settings(data_dir=tmp_path)) == str(tmp_path / "archive")
    with pytest.raises(UserError, match=r"needs a filesystem package .*pip install -e '\.\[s3\]'"):
        archive.filesystem(Settings(archive_url="s3://bucket/prefix"))  # s3fs: an extra
    with pytest.raises(UserError, match="no filesystem fsspec knows"):
        archive.filesystem(Settings(archive_url="nosuchproto-xyz://bucket/prefix"))


# ---- retention ------------------------------------------------------------------------------


def test_cutoffs_count_back_from_the_run_day() -> None:
    s = Settings(ops_log_retention_days=90, realtime_retention_days=7, mart_retention_days=365)
    day = date(2026, 3, 8)
    assert retention.cutoff(s, "ops_logs", day) == date(2025, 12, 8)
    assert retention.cutoff(s, "realtime", day) == date(2026, 3, 1)
    assert retention.cutoff(s, "marts", day) == date(2025, 3, 8)


def test_the_rules_cover_every_date_grained_model_in_a_safe_order() -> None:
    marts = [r.relation for r in retention.rules(("marts",))]
    assert marts.index("analytics_intermediate.int_purchase_lines") < marts.index(
        "analytics_intermediate.int_events_sessionized")  # it finds sessions there
    assert {r.relation.split(".")[1] for r in retention.MARTS} == {
        "int_purchase_lines", "int_events_sessionized", "processed_events", "user_sessions",
        "daily_aggregations", "product_analytics"}
    ledger = next(r for r in retention.OPS_LOGS if r.relation == "ops.ingest_batches")
    assert "max(n.batch_id)" in ledger.predicate  # each query's newest batch stays
    assert all("%(" in r.predicate for r in retention.rules())


# ---- maintenance runs -----------------------------------------------------------------------


def test_the_dag_runs_the_steps_of_the_cli_in_the_same_order() -> None:
    assert dag_steps.STEPS == maintenance.STEPS == tuple(maintenance.STEP_FUNCTIONS)


def test_nothing_is_deleted_after_a_failed_backup(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def step(name: str, fail: bool = False):  # type: ignore[no-untyped-def]
        def run(settings: Settings, log: ActionLog, day: date, progress: object) -> None:
            ran.append(name)
            if fail:
                log.record(Action(name, "pgbackrest", "failed"))
                raise UserError("pgBackRest backup failed: disk full.")
        return run

    funcs = {n: step(n, fail=n == "backup") for n in maintenance.STEPS}
    monkeypatch.setattr(maintenance, "STEP_FUNCTIONS", funcs)
    monkeypatch.setattr(ActionLog, "record", lambda self, entry: self.actions.append(entry))
    log = maintenance.run(Settings(), date(2026, 3, 8))
    assert ran == ["kafka_retention", "backup", "expire_backups"]
    assert [(a.action, a.status) for a in log.actions] == [
        ("backup", "failed"), ("archive", "skipped"), ("prune", "skipped")]
    assert [a.action for a in log.failed] == ["backup"]


def test_dates_and_moments_on_the_command_line() -> None:
    assert parse_day("2026-03-01") == date(2026, 3, 1)
    assert parse_time("2026-03-01T12:30:00Z") == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert parse_time("2026-03-01 12:30") == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    with pytest.raises(UserError, match="is not a date"):
        parse_day("yesterday")
    with pytest.raises(UserError, match="is not a moment"):
        parse_time("noon")


def test_a_failed_recovery_names_its_cause_not_the_refusals_of_our_own_probes(
        tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "2026-12-03 14:32:47 UTC [9] FATAL:  the database system is not yet accepting "
        "connections\n"
        "2026-12-03 14:32:48 UTC [7] FATAL:  recovery ended before configured recovery target "
        "was reached\n"
        "2026-12-03 14:32:48 UTC [11] FATAL:  the database system is not yet accepting "
        "connections\n"
        "2026-12-03 14:32:48 UTC [12] FATAL:  the database system is shutting down\n")
    message = backup._recovery_failure(log)
    assert "(recovery ended before configured recovery target was reached: " in message
    assert "not yet accepting" not in message
    log.write_text("2026-12-03 14:32:47 UTC [9] FATAL:  the database system is starting up\n")
    assert "(the database system is starting up)" in backup._recovery_failure(log)
