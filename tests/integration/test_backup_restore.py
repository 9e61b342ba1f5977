"""Backups of the embedded cluster with pgBackRest: WAL archived from `stack up`, a backup
and its listing, a point-in-time restore over a running cluster (`--force`), and the
restores that must be refused with one sentence while the running cluster stays as it
was: no --force, a WAL segment missing from the archive, another cluster's repository.

Two private stacks with WAL archiving on (test stacks have it off by default).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ecom.config import Settings
from ecom.stack import backup, postgres, wal_archive
from ecom_app.seed import query
from tests.conftest import private_stack, run_ecom

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with private_stack(tmp_path_factory, "backup-a", backup_enabled=True) as s:
        query(s, "create table ops.probe (n integer primary key, at timestamptz default "
                 "clock_timestamp())")
        yield s


@pytest.fixture(scope="module")
def stack_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with private_stack(tmp_path_factory, "backup-b", backup_enabled=True) as s:
        query(s, "create table ops.probe (n integer primary key)")
        query(s, "insert into ops.probe values (42) returning 1")
        yield s


def _sentence(proc: object) -> str:
    text = " ".join(proc.stderr.split())  # type: ignore[attr-defined]
    assert proc.returncode == 2, text  # type: ignore[attr-defined]
    assert text.startswith("error: ") and "Traceback" not in text
    return text


def _insert_and_archive(s: Settings, n: int) -> datetime:
    """Insert probe row n, switch to a new WAL segment and wait until it is archived;
    returns the row's commit time."""
    [(at, segment)] = query(s, "insert into ops.probe (n) values (%s) "
                               "returning at, pg_walfile_name(pg_current_wal_lsn())", (n,))
    query(s, "select pg_switch_wal()")
    backup.wait_archived(s, segment, timeout_s=60)
    return at


def _probe(s: Settings) -> list[int]:
    return [n for (n,) in query(s, "select n from ops.probe order by n")]


def test_stack_up_archives_wal_and_a_backup_lists_its_range(stack_a: Settings) -> None:
    s = stack_a
    assert query(s, "select current_setting('archive_mode'), "
                    "current_setting('archive_timeout')") == [("on", "30s")]
    conf = wal_archive.config_path(s, postgres.cluster_dir(s))
    assert f"pg1-port={s.pg_port}" in conf.read_text()
    out = run_ecom(s, "warehouse", "backup").stdout
    assert "(full)" in out and "in the repository" in out
    listing = " ".join(run_ecom(s, "warehouse", "backups").stdout.split())
    assert "full" in listing and "restorable: from" in listing
    status = " ".join(run_ecom(s, "stack", "status").stdout.split())
    assert "backups" in status and "1, newest full" in status


def test_point_in_time_restore_replaces_a_running_cluster_when_forced(
        stack_a: Settings) -> None:
    s = stack_a
    _insert_and_archive(s, 1)
    time.sleep(1.1)
    target = datetime.now(UTC)
    time.sleep(1.1)
    _insert_and_archive(s, 2)

    refused = _sentence(run_ecom(s, "warehouse", "restore", "--to-time", target.isoformat(),
                                 check=False))
    assert "PostgreSQL is running on port" in refused and "--force" in refused
    assert postgres.is_running(s) and _probe(s) == [1, 2]

    out = " ".join(run_ecom(s, "warehouse", "restore", "--to-time", target.isoformat(),
                            "--force").stdout.split())
    assert "first query answered" in out and "is kept in" in out
    assert _probe(s) == [1]
    assert list(postgres.cluster_dir(s).parent.glob("*.before-restore-*"))
    # the restored cluster archives on its new timeline, and can be backed up again
    _insert_and_archive(s, 3)
    assert query(s, "select timeline_id from pg_control_checkpoint()")[0][0] >= 2
    run_ecom(s, "warehouse", "backup", "--type", "diff")
    assert [b.kind for b in backup.repository(s).backups] == ["full", "diff"]


def _segment_file(s: Settings, name: str) -> Path:
    repo = wal_archive.repo_path(s, postgres.cluster_dir(s))
    [found] = [f for n, f in backup._wal_files(repo) if n == name]
    return found


def test_a_missing_wal_segment_is_one_sentence_and_changes_nothing(stack_a: Settings) -> None:
    s = stack_a
    first = query(s, "select pg_walfile_name(pg_current_wal_lsn())")[0][0]
    for n in (10, 11, 12):
        _insert_and_archive(s, n)
    target = datetime.now(UTC)
    segment = _segment_file(s, first)
    hidden = segment.with_name(segment.name + ".hidden")
    segment.rename(hidden)
    try:
        message = _sentence(run_ecom(s, "warehouse", "restore", "--to-time",
                                     target.isoformat(), "--force", check=False))
    finally:
        hidden.rename(segment)
    assert f"WAL segment {first} is missing from the archive" in message
    assert "nothing was changed" in message
    assert postgres.is_running(s) and _probe(s) == [1, 3, 10, 11, 12]
    assert not list(postgres.cluster_dir(s).parent.glob("*.restoring"))

    # a damaged segment passes the check of names: the replay stops short of the target
    # in the restored copy, which is thrown away
    intact = segment.read_bytes()
    segment.write_bytes(b"not a WAL segment")
    try:
        message = _sentence(run_ecom(s, "warehouse", "restore", "--to-time",
                                     target.isoformat(), "--force", check=False))
    finally:
        segment.write_bytes(intact)
    assert "The restored cluster did not recover" in message
    assert "recovery ended before configured recovery target was reached" in message
    assert "the running cluster, if any, was not touched" in message
    assert postgres.is_running(s) and _probe(s) == [1, 3, 10, 11, 12]
    assert not list(postgres.cluster_dir(s).parent.glob("*.restoring"))


def test_another_clusters_repository_is_one_sentence_and_changes_nothing(
        stack_a: Settings, stack_b: Settings) -> None:
    foreign = stack_b.replace(
        backup_repo=str(wal_archive.repo_path(stack_a, postgres.cluster_dir(stack_a))))
    message = _sentence(run_ecom(foreign, "warehouse", "restore", "--force", check=False))
    assert "taken from another PostgreSQL cluster" in message
    assert "nothing was changed" in message
    assert postgres.is_running(stack_b) and _probe(stack_b) == [42]
    # pgBackRest itself refuses to back this cluster up into that repository
    message = _sentence(run_ecom(foreign, "warehouse", "backup", check=False))
    assert "belongs to another PostgreSQL cluster" in message
    assert _probe(stack_b) == [42]
