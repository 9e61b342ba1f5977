"""Ingestion on a real Spark standalone cluster, and a worker killed under it.

A master and two workers started from the installed pyspark (`ingestion.cluster`, what
`ecom spark up` runs), each worker its own JVM process with one core, so the executors run
in processes other than the driver's: the Python data source reads Kafka there, the
checkpoint is on a path every process reaches, and with `ECOM_SINK_WRITER=executors` the
executors validate and COPY into the staging table too. For each writer:

1. a simulated run lands with `ecom ingest stream --available-now` on the cluster: exact
   against the manifest (every valid event once, every bad class as its dead letter, every
   offset settled once);
2. a second run streams while a worker is killed with SIGKILL (its whole process group:
   the worker, its executor, their Python workers): Spark re-runs the lost tasks on the
   other worker, the stream finishes, and both runs are exact again;
3. `ecom ingest batch` replays the whole topic on the cluster (one worker short): nothing
   new lands.

Marked slow (a cluster start and four streaming runs); it runs in CI. The figures are
printed even when it passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecom.config import REPO_ROOT, Settings
from ecom.ports import free_port
from ingestion import cluster
from tests.conftest import ECOM, run_ecom
from tests.integration.test_ingestion_stream import WRITERS, private_settings, simulate
from tests.reconciliation import Expected, assert_raw_exact, id_figures, show

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

#: simulated days no other test uses (realtime windows are not per topic)
FIRST_DAY = datetime.now(UTC).date() - timedelta(days=61)


@pytest.fixture(scope="module")
def spark_cluster(stack: Settings, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Settings]:
    """Settings of a private two-worker cluster (its pids and logs in its own data dir)."""
    settings = stack.replace(data_dir=tmp_path_factory.mktemp("spark-cluster"),
                             pg_sslrootcert=stack.sslrootcert,  # the stack's CA stays
                             spark_master_port=free_port(), spark_master_ui_port=free_port(),
                             spark_workers=2, spark_worker_cores=1, spark_worker_memory="1g")
    try:
        cluster.up(settings)
        yield settings
    finally:
        cluster.down(settings)


def _landed(settings: Settings) -> int:
    return id_figures(settings, Expected()).landed


def _wait_for_rows(settings: Settings, at_least: int, proc: subprocess.Popen, log: Path,
                   timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        landed = _landed(settings)
        if landed >= at_least:
            return landed
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no progress to {at_least} rows:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("writer", WRITERS)
def test_ingestion_on_a_cluster_lands_exactly_once_even_when_a_worker_dies(
        stack: Settings, spark_cluster: Settings, tmp_path: Path, writer: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    index = WRITERS.index(writer)
    settings = private_settings(stack, tmp_path, sink_writer=writer,
                                spark_master=cluster.master_url(spark_cluster),
                                spark_master_port=spark_cluster.spark_master_port,
                                spark_master_ui_port=spark_cluster.spark_master_ui_port)
    label = f"cluster (2 workers x 1 core, {writer} writer)"
    cluster.up(spark_cluster)  # both workers (the previous case killed one)

    # 1. one run lands exactly once on the cluster
    day = FIRST_DAY - timedelta(days=10 * index)
    first = simulate(settings, tmp_path / "first.json", end_date=day.isoformat(),
                     events=8_000, seed=611 + index, bad_rate=0.05)
    out = run_ecom(settings, "ingest", "stream", "--available-now",
                   "--max-rows-per-batch", "3000", timeout=600).stdout
    assert "done:" in out
    figures = assert_raw_exact(settings, Expected.of([first]))
    show(capsys, figures.line(label))

    # 2. a second run streams while a worker dies with SIGKILL
    second = simulate(settings, tmp_path / "second.json",
                      end_date=(day - timedelta(days=1)).isoformat(), events=30_000,
                      seed=621 + index, bad_rate=0.05)
    log = tmp_path / "stream.log"
    proc = subprocess.Popen(
        [*ECOM, "ingest", "stream", "--available-now", "--max-rows-per-batch", "3000"],
        cwd=REPO_ROOT, env=settings.subprocess_env(), stdout=log.open("ab"),
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        before = _wait_for_rows(settings, figures.landed + 6_000, proc, log)
        busy = cluster.busy_workers(spark_cluster)
        assert busy, "no worker runs an executor of the stream"
        victim = busy[0]
        assert proc.poll() is None, "the stream finished before the kill"
        pid = cluster.kill_worker(spark_cluster, victim)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:  # the driver's whole group: its JVM too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-3000:]
    both = Expected.of([first, second])
    assert before < len(both.event_ids), "the stream finished before the kill"
    figures = assert_raw_exact(settings, both)
    show(capsys, f"{label}: {victim} killed with SIGKILL (pid {pid}, its executor with it) "
                 f"after {before:,} events had landed; "
                 + figures.line("then").removeprefix("then: "))

    # 3. a replay of the whole topic on the cluster (one worker left) adds nothing
    out = run_ecom(settings, "ingest", "batch", timeout=600).stdout
    assert "0 landed, 0 rejected" in out, out
    assert_raw_exact(settings, both)
    show(capsys, f"{label}: replay of the topic on the cluster: 0 new rows, "
                 f"{both.messages:,} already landed")
