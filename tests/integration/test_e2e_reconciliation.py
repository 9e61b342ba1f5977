"""End to end, from the simulator's manifest to the marts, with nothing faked in between.

Two simulated days with bad, re-sent (duplicate) and late events go into the broker of a
private stack; `ecom ingest stream --available-now` (the real Spark job, as a subprocess)
lands them; `dbt build` builds and tests the warehouse. Then, exactly:
- raw.raw_events holds the manifest's valid event ids, each once;
- raw.rejected_events holds the injected bad events class by class (the reason code
  `ecom.events.EXPECTED_REASON` assigns each class), every Kafka offset in one table;
- the marts hold every count by event type and day (and category), every revenue figure
  by day and category, units and orders by day of the manifest.
The Airflow DAG path is covered by tests/integration/test_airflow_dag.py; here dbt runs
directly so the whole chain stays around two minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ecom.config import Settings
from ecom.events import EXPECTED_REASON, BadClass
from ecom_app.seed import run_dbt, run_results
from simulator.manifest import Manifest, load_manifest
from tests.conftest import private_stack, run_ecom
from tests.reconciliation import (
    Expected,
    assert_marts_exact,
    assert_raw_exact,
    id_figures,
    nonzero,
    rejected_by_class,
    show,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

# recent days: the simulator's future_timestamp class must lie in the future of the wall clock
END_DATE = datetime.now(UTC).date() - timedelta(days=10)
DAYS = 2


@dataclass
class Pipeline:
    settings: Settings
    manifest: Manifest
    expected: Expected
    ingest_output: str


@pytest.fixture(scope="module")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A stack of its own: `dbt build` tests every row of the warehouse, so other modules'
    deliberately corrupted rows must not reach it."""
    with private_stack(tmp_path_factory, "ecom-e2e-stack") as settings:
        yield settings


@pytest.fixture(scope="module")
def pipeline(e2e_stack: Settings) -> Pipeline:
    settings = e2e_stack
    path = settings.manifest_dir / "e2e.json"
    run_ecom(settings, "simulate", "backfill", "--days", str(DAYS), "--events-per-day", "2500",
             "--end-date", END_DATE.isoformat(), "--seed", "20260808", "--bad-rate", "0.04",
             "--late-rate", "0.05", "--manifest", str(path), "--no-progress")
    manifest = load_manifest(path)
    # the scenario must hold every kind of trouble, or the checks below prove less
    assert all(manifest.bad_events_by_class[c.value] > 0 for c in BadClass), \
        manifest.bad_events_by_class
    assert manifest.late_events > 0 and manifest.duplicates_resent > 0
    ingest = run_ecom(settings, "ingest", "stream", "--available-now",
                      "--max-rows-per-batch", "2000")
    run_dbt(settings, "build")
    return Pipeline(settings, manifest, Expected.of([manifest]), ingest.stdout)


def test_the_stream_drained_in_several_micro_batches(pipeline: Pipeline) -> None:
    batch_lines = [ln for ln in pipeline.ingest_output.splitlines() if ln.startswith("batch ")]
    assert len(batch_lines) >= 3, pipeline.ingest_output[-3000:]
    assert "done:" in pipeline.ingest_output


def test_dbt_build_passes_every_model_and_test(pipeline: Pipeline) -> None:
    results = run_results(pipeline.settings)
    failed = [(r["unique_id"], r["status"]) for r in results
              if r["status"] not in ("success", "pass") and not
              r["unique_id"].startswith("exposure.")]
    assert not failed
    assert sum(r["unique_id"].startswith("model.") for r in results) >= 10


def test_raw_events_are_exactly_the_manifests_valid_events(
        pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    figures = assert_raw_exact(pipeline.settings, pipeline.expected)
    assert figures.exact, figures
    show(capsys, figures.line("e2e raw"))


def test_rejected_events_match_the_injected_bad_events_class_by_class(
        pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    # one reason per class and one class per reason: "class by class" is well defined
    assert len(set(EXPECTED_REASON.values())) == len(EXPECTED_REASON) == len(BadClass)
    by_class = rejected_by_class(pipeline.settings)
    expected = nonzero(pipeline.expected.bad_by_class)
    assert by_class == expected
    show(capsys, "e2e dead letters by class (rejected / injected): " + ", ".join(
        f"{c} {by_class.get(c, 0)}/{n}" for c, n in sorted(expected.items())))


def test_marts_match_the_manifest_by_event_type_day_category_and_revenue(
        pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    compared = assert_marts_exact(pipeline.settings, pipeline.expected)
    m = pipeline.manifest
    figures = id_figures(pipeline.settings, pipeline.expected)
    show(capsys, f"e2e marts: {compared} figures compared exactly over {len(m.events_by_day)} "
         f"days ({figures.checked:,} events incl. {m.late_events} late, revenue "
         f"{m.revenue_total}, {m.orders} orders); lost {figures.lost}, duplicated "
         f"{figures.duplicated}")
