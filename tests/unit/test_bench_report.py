"""bench/report.py: the README's benchmark table is bench/RESULTS.md's, and `--only` keeps
the figures of the benchmarks it did not run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_readme_table_is_the_figures_table_of_bench_results() -> None:
    report = _report()
    readme = report.README_TABLE.search((REPO / "README.md").read_text())
    assert readme, "the README marks its benchmark table"
    results = report.figures_table((REPO / "bench" / "RESULTS.md").read_text())
    assert readme[2] == results


def test_only_keeps_the_other_benchmarks_figures_with_when_they_were_measured(
        tmp_path: Path) -> None:
    report = _report()
    old = report.render({"date (UTC)": "2026-01-01 00:00", "commit": "aaa"}, [
        report.Outcome(report.BENCHMARKS[0], ["bench/simulate.py"], 0, 10.0, 0.5,
                       [report.Row("simulate", "events/s", "100")]),
        report.Outcome(report.BENCHMARKS[2], ["bench/dbt_build.py"], 0, 20.0, 0.7,
                       [report.Row("dbt_build", "ratio", "0.09", "<= 0.1", "met")]),
    ], quick=False)
    path = tmp_path / "RESULTS.md"
    path.write_text(old)
    kept = report._previous(path)
    new = report.render({"date (UTC)": "2026-02-02 00:00", "commit": "bbb"}, [
        report.Outcome(report.BENCHMARKS[2], ["bench/dbt_build.py"], 0, 30.0, 0.2,
                       [report.Row("dbt_build", "ratio", "0.08", "<= 0.1", "met")]),
    ], quick=False, kept=kept)
    table = report.figures_table(new)
    assert "| simulate | events/s | 100 |" in table  # kept
    assert "| dbt_build | ratio | 0.08 |" in table and "0.09" not in table  # re-measured
    runs = new.split("## Runs", 1)[1]
    assert "2026-01-01 00:00, aaa" in runs and "2026-02-02 00:00, bbb" in runs
