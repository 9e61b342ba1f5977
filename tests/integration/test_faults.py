"""Fault tests: services fail under the pipeline; afterwards nothing is lost or doubled.

Each test checks the warehouse against the simulator's manifests and prints the figures
(events checked, lost, duplicated). They share one private stack (its PostgreSQL and broker
are stopped and restarted on purpose) and one story, in this order:

1. `kill -9` of the streaming driver, three times, then a restart: covered by
   `test_kill_minus_nine_mid_stream_loses_and_doubles_nothing` in
   tests/integration/test_ingestion_stream.py (the driver's whole process group, JVM
   included; ids, dead letters and every Kafka offset exact afterwards). Not repeated here.
2. PostgreSQL restarted while the stream writes: the job fails visibly (non-zero exit, the
   lost connection named); run again, the totals are exact.
3. The embedded broker restarted (memory storage: the topic comes back empty, unconsumed
   events are gone, offsets start at 0 again): the next stream run refuses to continue,
   naming the gap; after `--reset-checkpoint` (a new topic epoch) new traffic written at
   offsets already ingested lands exactly once.
4. A DAG run killed once its dbt staging group has started, then re-run for the same day:
   the marts equal, row for row, a clean rebuild from raw; its extract (a replay into the
   stream's epoch) adds nothing.
5. The first run re-sent unchanged after the reset: duplicate_event_id dead letters only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecom.config import REPO_ROOT, Settings
from ecom.kafka_admin import ensure_topics
from ecom.stack import broker, postgres
from ecom.stack.manager import up
from ecom_app.seed import query, run_dbt
from simulator.manifest import Manifest, load_manifest
from tests.conftest import ECOM, _private_settings, run_ecom
from tests.reconciliation import (
    CLASS_OF_REASON,
    Expected,
    assert_marts_exact,
    assert_raw_exact,
    id_figures,
    marts_digest,
    nonzero,
    offsets_settled_once,
    rejected_by_class,
    show,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

# a recent day: the simulator's future_timestamp class must lie in the future of the clock
DAY = (datetime.now(UTC).date() - timedelta(days=20)).isoformat()
# name, seed, events: THIRD is new traffic after the broker restart (a different seed)
FIRST, SECOND, THIRD = ("first", 7101, 6000), ("second", 7102, 3000), ("third", 7103, 3000)
#: what a lost PostgreSQL connection looks like in the stream's output
CONNECTION_LOST = ("PostgreSQL connection lost", "server closed the connection",
                   "connection already closed",
                   "terminating connection", "Connection refused", "could not connect")


def one_line(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def simulate(settings: Settings, run: tuple[str, int, int], suffix: str = "") -> Manifest:
    name, seed, events = run
    path = settings.manifest_dir / f"{name}{suffix}.json"
    run_ecom(settings, "simulate", "backfill", "--days", "1", "--end-date", DAY,
             "--events-per-day", str(events), "--seed", str(seed), "--bad-rate", "0.02",
             "--late-rate", "0.03", "--manifest", str(path), "--no-progress")
    return load_manifest(path)


def raw_counts(settings: Settings) -> tuple[int, int]:
    return query(settings, "select (select count(*) from raw.raw_events), "
                           "(select count(*) from raw.rejected_events)")[0]


def start_in_own_group(settings: Settings, log: Path, *args: str) -> subprocess.Popen:
    """`ecom <args>` in its own process group, so a kill reaches every child (JVM, dbt)."""
    return subprocess.Popen([*ECOM, *args], cwd=REPO_ROOT, env=settings.subprocess_env(),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGKILL the whole group and wait until none of it runs (zombies aside)."""
    with contextlib.suppress(ProcessLookupError):  # the whole group may have ended
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)], text=True,
                                capture_output=True, check=False).stdout.split()
        if all(s.startswith("Z") for s in states):
            return
        time.sleep(0.2)
    raise AssertionError(f"process group {proc.pid} still runs after SIGKILL")


def wait_until(condition: object, proc: subprocess.Popen, log: Path, what: str,
               timeout: float = 300) -> object:
    """Poll `condition()` until truthy; fail if `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()  # type: ignore[operator]
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {what}:\n"
                                 f"{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


# ---- fixtures: one stack, one story ---------------------------------------------------------

@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A stack of its own: these tests stop and restart its PostgreSQL and broker."""
    settings, _ = up(_private_settings(tmp_path_factory.mktemp("ecom-fault-stack")))
    try:
        yield settings
    finally:
        broker.stop(settings)
        postgres.destroy(settings)


@dataclass
class PostgresRestart:
    manifest: Manifest
    landed_at_stop: int
    exit_code: int | None
    output: str
    recovery_output: str


@pytest.fixture(scope="module")
def postgres_restarted(fault_stack: Settings, tmp_path_factory: pytest.TempPathFactory
                       ) -> PostgresRestart:
    """The stream drains the first run in small batches; PostgreSQL stops under it, comes
    back once the job has ended, and the stream runs again."""
    settings = fault_stack
    manifest = simulate(settings, FIRST)
    log = tmp_path_factory.mktemp("pg-restart") / "stream.log"
    proc = start_in_own_group(settings, log, "ingest", "stream", "--available-now",
                              "--max-rows-per-batch", "400")
    exit_code = None
    try:
        landed = wait_until(lambda: (n := raw_counts(settings)[0]) >= 1000 and n, proc, log,
                            "1,000 rows landed")
        postgres.stop(settings)
        with contextlib.suppress(subprocess.TimeoutExpired):  # asserted on below
            exit_code = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            kill_group(proc)
        postgres.start(settings)
    recovery = run_ecom(settings, "ingest", "stream", "--available-now")
    return PostgresRestart(manifest, int(landed), exit_code, log.read_text(errors="replace"),
                           recovery.stdout)


@dataclass(frozen=True)
class RawState:
    """What the landing tables hold for the events topic at one moment."""

    ids: set[str]
    rejected_by_class: dict[str, int]
    settled: tuple[int, int]  # (rows, distinct coordinates) over both tables

    @classmethod
    def read(cls, settings: Settings) -> RawState:
        ids = {r[0] for r in query(settings, "select event_id::text from raw.raw_events "
                                   "where kafka_topic = %s", (settings.topic_events,))}
        return cls(ids, rejected_by_class(settings), offsets_settled_once(settings))


@dataclass
class BrokerRestart:
    first: Manifest
    second: Manifest
    third: Manifest
    counts_before: tuple[int, int]
    counts_after_gap: tuple[int, int]
    gap: subprocess.CompletedProcess[str]
    recovery: subprocess.CompletedProcess[str]
    recovered: RawState  # after the new traffic landed


@dataclass
class Resent:
    manifest: Manifest
    before: RawState
    resend: subprocess.CompletedProcess[str]
    after: RawState


def restart_broker(settings: Settings) -> None:
    broker.stop(settings)
    broker.start(settings)
    ensure_topics(settings)


@pytest.fixture(scope="module")
def broker_restarted(fault_stack: Settings, postgres_restarted: PostgresRestart
                     ) -> BrokerRestart:
    """After the first run is ingested, a second run is produced but not consumed; the broker
    restarts (both are gone from Kafka, the second for good); the stream runs and fails.
    New traffic (a third run, another seed) is written at the offsets the first run had;
    the stream runs with --reset-checkpoint."""
    settings = fault_stack
    second = simulate(settings, SECOND)
    before = raw_counts(settings)
    restart_broker(settings)
    gap = run_ecom(settings, "ingest", "stream", "--available-now", check=False)
    after_gap = raw_counts(settings)
    third = simulate(settings, THIRD)
    recovery = run_ecom(settings, "ingest", "stream", "--available-now", "--reset-checkpoint",
                        check=False)
    return BrokerRestart(postgres_restarted.manifest, second, third, before, after_gap,
                         gap, recovery, RawState.read(settings))


@pytest.fixture(scope="module")
def first_resent(fault_stack: Settings, broker_restarted: BrokerRestart) -> Resent:
    """After the reset (and the DAG runs: a whole run of duplicates would rightly fail the
    raw gate's reject ratio), the first run is re-sent as it was; the stream runs."""
    before = RawState.read(fault_stack)
    resent = simulate(fault_stack, FIRST, "-resent")
    resend = run_ecom(fault_stack, "ingest", "stream", "--available-now", check=False)
    return Resent(resent, before, resend, RawState.read(fault_stack))


# ---- 2. PostgreSQL restarted under the stream ---------------------------------------------

def test_postgres_restart_fails_the_stream_visibly_then_totals_are_exact(
        fault_stack: Settings, postgres_restarted: PostgresRestart,
        capsys: pytest.CaptureFixture[str]) -> None:
    r = postgres_restarted
    assert r.exit_code is not None, "the stream kept running without its database"
    assert r.exit_code != 0, r.output[-3000:]
    errors = [ln for ln in r.output.splitlines() if ln.lower().startswith("error")]
    assert errors, r.output[-3000:]  # one error line for the user, not just a trace
    assert any(s in r.output for s in CONNECTION_LOST), r.output[-3000:]
    assert r.landed_at_stop < r.manifest.valid_events, "the stream ended before the restart"
    assert "done:" in r.recovery_output
    figures = assert_raw_exact(fault_stack, Expected.of([r.manifest]))
    show(capsys, figures.line(
        f"PostgreSQL restarted after {r.landed_at_stop:,} rows (stream exit {r.exit_code}), "
        "stream re-run"))


# ---- 3. broker restarted: memory storage lost the topic ------------------------------------

def test_broker_restart_stops_the_stream_loudly_naming_the_gap(
        broker_restarted: BrokerRestart) -> None:
    b = broker_restarted
    text = one_line(b.gap.stdout + b.gap.stderr)
    assert b.gap.returncode != 0, text[-3000:]
    assert "Offsets went backwards" in text and "are gone from Kafka" in text, text[-3000:]
    assert "--reset-checkpoint" in text
    assert "Traceback" not in text  # one clear message, no stack trace
    assert b.counts_after_gap == b.counts_before  # nothing written, nothing removed


def test_broker_restart_then_reset_lands_new_traffic_at_reused_offsets_exactly_once(
        fault_stack: Settings, broker_restarted: BrokerRestart,
        capsys: pytest.CaptureFixture[str]) -> None:
    b = broker_restarted
    text = one_line(b.recovery.stdout + b.recovery.stderr)
    assert b.recovery.returncode == 0, text[-3000:]
    assert "checkpoint reset" in text and "topic epoch 1" in text
    # the third run was written at offsets the first run had already landed at
    assert b.third.messages_acknowledged <= b.first.messages_acknowledged
    expected = Expected.of([b.first, b.third])
    got = b.recovered
    assert got.ids == expected.event_ids  # every manifest id, once; nothing doubled
    assert got.rejected_by_class == nonzero(expected.bad_by_class)
    assert got.settled == (expected.messages, expected.messages)  # (epoch, offset) once
    show(capsys, f"broker restarted ({b.second.messages_acknowledged:,} unconsumed messages "
         f"lost), gap reported, --reset-checkpoint: new run of "
         f"{b.third.messages_acknowledged:,} messages at re-used offsets landed exactly "
         f"({len(got.ids):,} ids = {len(expected.event_ids):,} expected, "
         f"{sum(got.rejected_by_class.values()):,} dead letters = {expected.bad:,})")


# ---- 4. a DAG run killed mid-way, then re-run ---------------------------------------------

@pytest.mark.timeout(1800)
def test_dag_run_killed_in_dbt_staging_then_rerun_gives_identical_marts(
        fault_stack: Settings, broker_restarted: BrokerRestart, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = fault_stack
    log = tmp_path / "killed-run.log"
    staging_sql = ("select task_id, status from ops.pipeline_execution_logs "
                   "where logical_date = %s order by log_id")
    landed = raw_counts(settings)
    proc = start_in_own_group(settings, log, "pipeline", "run", "--date", DAY)
    try:
        wait_until(lambda: any(t.startswith("transform_staging.") for t, _ in
                               query(settings, staging_sql, (DAY,))),
                   proc, log, "the dbt staging group to start", timeout=900)
        time.sleep(2)  # a dbt task is mid-flight
    finally:
        kill_group(proc)
    killed_at = query(settings, staging_sql, (DAY,))
    assert not any(t.startswith(("transform_marts.", "report")) for t, _ in killed_at)
    assert ("extract", "success") in killed_at

    rerun = run_ecom(settings, "pipeline", "run", "--date", DAY, timeout=1500)
    assert "success" in rerun.stdout
    after_rerun = marts_digest(settings, DAY)
    # extract replays the topic into the stream's epoch: every coordinate already landed
    assert raw_counts(settings) == landed
    expected = Expected.of([broker_restarted.first, broker_restarted.third])
    compared = assert_marts_exact(settings, expected, [DAY])

    # the reference: every model rebuilt from raw in one uninterrupted dbt invocation
    run_dbt(settings, "run", "--full-refresh")
    assert marts_digest(settings, DAY) == after_rerun
    figures = id_figures(settings, expected)
    show(capsys, f"DAG run killed at {killed_at[-1][0]} ({killed_at[-1][1]}), re-run: marts "
         f"identical to a clean rebuild ({'; '.join(f'{k} {v}' for k, v in after_rerun.items())}"
         f"); {compared} mart figures exact; events checked {figures.checked:,}, lost "
         f"{figures.lost}, duplicated {figures.duplicated}")


# ---- 5. old events re-sent after the reset ---------------------------------------------

def test_old_events_resent_after_the_reset_are_duplicate_dead_letters_only(
        broker_restarted: BrokerRestart, first_resent: Resent,
        capsys: pytest.CaptureFixture[str]) -> None:
    b, r = broker_restarted, first_resent
    # the re-sent run is the first one byte for byte (the simulator is deterministic)
    assert r.manifest.stream_sha256 == b.first.stream_sha256
    text = one_line(r.resend.stdout + r.resend.stderr)
    assert r.resend.returncode == 0, text[-3000:]
    assert r.after.ids == r.before.ids == b.recovered.ids  # no raw row added
    added = {cls: n - r.before.rejected_by_class.get(cls, 0)
             for cls, n in r.after.rejected_by_class.items()}
    duplicate = CLASS_OF_REASON["duplicate_event_id"].value
    # every valid event is a duplicate now; the bad ones get their reason again
    wanted = {**b.first.bad_events_by_class}
    wanted[duplicate] = wanted.get(duplicate, 0) + b.first.valid_events
    assert nonzero(added) == nonzero(wanted)
    rows, coords = r.after.settled
    assert rows == coords == r.before.settled[0] + b.first.messages_acknowledged
    show(capsys, f"first run re-sent unchanged after the reset: 0 raw rows added, "
         f"{added.get(duplicate, 0):,} duplicate_event_id dead letters "
         f"({b.first.valid_events:,} valid events re-sent)")
