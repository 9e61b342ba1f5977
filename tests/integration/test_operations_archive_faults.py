"""The archive's bad cases on the real stack: a target that cannot be written and a target
that fills up mid-part stop the archive with one sentence and delete nothing; once the
target is fixed, the re-run completes, each row archived once.

Dead letters (`raw.rejected_events`) are archived here: the same write, verify and
delete as raw events, without needing dbt to have built the day first. The targets are
real filesystems: a read-only and a 256 kB tmpfs (mounting needs root; without it a
directory without write permission stands in, and the disk-full case is skipped).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ecom.config import Settings
from ecom_app.seed import query, table_snapshot
from tests.conftest import private_stack, run_ecom

pytestmark = pytest.mark.integration

DAYS = [date(2025, 1, 6), date(2025, 1, 7)]
AS_OF = date(2025, 3, 1)
ROWS_PER_DAY = 600
IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def stack_with_dead_letters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with private_stack(tmp_path_factory, "ops-archive-faults") as s:
        for day in DAYS:
            # ~2 kB of random hex per letter: it does not compress below a small disk
            query(s, "insert into raw.rejected_events (kafka_topic, kafka_partition, "
                     "kafka_offset, raw_value, raw_size_bytes, reason_code, reason_message, "
                     "received_at) select 'gone.ecommerce-events', 0, %s + i, v, length(v), "
                     "'invalid_json', 'not JSON', %s::date + i * interval '1 minute' "
                     "from generate_series(1, %s) as g (i) cross join lateral (select "
                     "string_agg(md5(random()::text || i || n), '') as v "
                     "from generate_series(1, 64) as s (n)) as payload returning 1",
                  (day.toordinal() * 10_000, day, ROWS_PER_DAY))
        yield s


@contextmanager
def mounted(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _maintain(s: Settings, url: Path, check: bool = False) -> Any:
    return run_ecom(s.replace(archive_url=str(url)), "maintenance", "run", "--date",
                    AS_OF.isoformat(), check=check)


def _failure(proc: Any) -> str:
    lines = [ln for ln in " ".join(proc.stdout.split()).split("failed: ")[1:]]
    assert len(lines) == 1, proc.stdout
    return lines[0]


def test_an_unwritable_archive_stops_with_one_sentence_and_deletes_nothing(
        stack_with_dead_letters: Settings, tmp_path: Path) -> None:
    s = stack_with_dead_letters
    before = table_snapshot(s, "raw.rejected_events")
    target = tmp_path / "read-only"
    if IS_ROOT:
        with mounted(target, "ro,size=1m"):
            proc = _maintain(s, target / "archive")
    else:
        target.mkdir()
        target.chmod(0o555)
        proc = _maintain(s, target / "archive")
    assert proc.returncode == 1
    message = _failure(proc)
    assert message.startswith("archive ") and "Cannot write to the archive" in message
    assert "nothing was deleted from raw" in message
    assert "Traceback" not in proc.stdout + proc.stderr
    assert table_snapshot(s, "raw.rejected_events") == before
    assert query(s, "select count(*) from ops.archive_parts where state = 'archived'") == [(0,)]


@pytest.mark.skipif(not IS_ROOT, reason="a small tmpfs needs root to mount")
def test_a_full_disk_deletes_nothing_and_the_rerun_completes(
        stack_with_dead_letters: Settings, tmp_path: Path) -> None:
    s = stack_with_dead_letters
    before = table_snapshot(s, "raw.rejected_events")
    with mounted(tmp_path / "small", "size=256k") as disk:
        proc = _maintain(s, disk / "archive")
        assert proc.returncode == 1
        message = _failure(proc)
        assert "No space left on device" in message and "nothing was deleted" in message
        assert table_snapshot(s, "raw.rejected_events") == before
        assert query(s, "select state from ops.archive_parts") == [("writing",)]

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        proc = _maintain(s, disk / "archive", check=True)
        assert "interrupted run" in proc.stdout
        assert query(s, "select count(*) from raw.rejected_events") == [(0,)]
        parts = query(s, "select day, part, rows, state from ops.archive_parts order by 1")
        assert [(d, n, st) for d, _, n, st in parts] == [
            (d, ROWS_PER_DAY, "archived") for d in DAYS]
        files = sorted(disk.rglob("*.parquet"))
        assert [f.name for f in files] == [p for _, p, _, _ in parts]
        assert sum(pq.read_metadata(f).num_rows for f in files) == len(before)

        run_ecom(s.replace(archive_url=str(disk / "archive")), "archive", "restore",
                 "--date", DAYS[0].isoformat(), "--table", "rejected_events")
        run_ecom(s.replace(archive_url=str(disk / "archive")), "archive", "restore",
                 "--date", DAYS[1].isoformat())
    assert table_snapshot(s, "raw.rejected_events") == before
