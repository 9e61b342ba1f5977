"""Run every benchmark once and write one markdown table of their figures, with the machine.

Runs, each in its own process (its output streams through and is kept in bench/out/):
  simulate.py   simulator events/s (generation only, produced via confluent / kafka-python)
  ingest.py     backlog drain events/s vs a bare COPY of the same rows, p50/p95 latency
                from produce to visible in realtime_metrics, the stream metrics' cost
  dbt_build.py  dbt full build vs incremental run of one new day
  dag_parse.py  DAG parse time (Cosmos from the dbt manifest) vs rendering with dbt ls
  quality.py    Great Expectations raw checkpoint over a day of events
  dag_run.py    the daily DAG run vs the same work run directly (ratio), per-day wall
                time at 20,000 and 150,000 events a day, a 30-day backfill's wall time
  security.py   what TLS and the audit trail cost COPY and single-row INSERTs (ratios)
  dr.py         disaster recovery: RPO (WAL archive lag) and RTO (point-in-time restore of
                10 million raw events, to the first query answered) with pgBackRest
  dashboard.py  each dashboard page's data time (its queries, as the page runs them) vs
                the same SQL run directly in PostgreSQL, on 30 days of history
and writes the figures, their targets and the machine description (cores, memory, CPU,
Python, Java, PostgreSQL, load average) to bench/RESULTS.md, and the figures to the
README's benchmark table.

Every figure is measured on this machine in this run; other work on the machine lowers
them (the load average before each benchmark is in the table). The full sizes take tens of
minutes: run them on a quiet machine. `--quick` uses small sizes (a few minutes) to check
the harness; its report goes to bench/out/RESULTS-quick.md and is not a reference.

    .venv/bin/python bench/report.py [--quick] [--only ingest,dbt_build] [--out PATH]

With `--only`, the report keeps the figures of the benchmarks not run from the existing
report; the Runs table says when and at which commit each benchmark was measured.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
OUT = BENCH / "out"


# ---- what each benchmark is run with ------------------------------------------------------

@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    json_output: bool = True  # accepts --json PATH; otherwise figures come from stdout


BENCHMARKS = (
    Benchmark("simulate", "simulate.py", (), ("--days", "1", "--events-per-day", "20000")),
    Benchmark("ingest", "ingest.py", (),
              ("--days", "1", "--events-per-day", "40000", "--latency-seconds", "15",
               "--spark", "local", "--metrics-pairs", "1")),
    Benchmark("dbt_build", "dbt_build.py", (), ("--days", "3", "--events-per-day", "5000")),
    Benchmark("dag_parse", "dag_parse.py", (), ("--runs", "1"), json_output=False),
    Benchmark("quality", "quality.py", (), ("--rows", "50000", "--history", "1")),
    Benchmark("dag_run", "dag_run.py", (),
              ("--sizes", "20000", "--history-days", "2", "--backfill-days", "3")),
    Benchmark("security", "security.py", (),
              ("--events-per-day", "20000", "--inserts", "2000", "--rounds", "2")),
    Benchmark("dr", "dr.py", (), ("--events", "300000", "--per-day", "100000")),
    Benchmark("dashboard", "dashboard.py", (), ("--days", "3", "--events-per-day", "5000",
                                                "--runs", "3")),
)


def constant(script: str, name: str) -> Any:
    """A module-level constant of a benchmark script (its target), read without importing."""
    tree = ast.parse((BENCH / script).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    return None


# ---- figures ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    benchmark: str
    figure: str
    value: str
    target: str = ""
    verdict: str = ""


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def simulate_rows(data: dict[str, Any], _stdout: str) -> list[Row]:
    target = constant("simulate.py", "TARGET")
    rows = [Row("simulate", "generation only, events/s",
                _num(data.get("generate", {}).get("events_per_s")))]
    best = 0
    for client in ("confluent", "kafka-python"):
        if client in data:
            rate = data[client]["events_per_s"]
            best = max(best, rate)
            rows.append(Row("simulate", f"produced via {client} (acks=all), events/s",
                            _num(rate)))
    if best:
        rows.append(Row("simulate", "simulator events/s (best client)", _num(best),
                        f">= {target:,}", _verdict(best >= target)))
    if "ratio_confluent_over_kafka_python" in data:
        ratio = data["ratio_confluent_over_kafka_python"]
        rows.append(Row("simulate", "confluent / kafka-python", f"{ratio:.2f}x", ">= 2x",
                        _verdict(ratio >= 2)))
    return rows


def ingest_rows(data: dict[str, Any], _stdout: str) -> list[Row]:
    drain, copy, lat = data.get("drain", {}), data.get("raw_copy", {}), data.get("latency", {})
    drain_target = constant("ingest.py", "DRAIN_TARGET")
    p95_target = constant("ingest.py", "P95_TARGET")
    ratio_target = constant("ingest.py", "RATIO_TARGET")
    rate = drain.get("events_per_s")
    rows = [
        Row("ingest", f"backlog drain into raw, events/s ({_num(drain.get('messages'))} "
            f"messages{', ' + drain['setup'] if 'setup' in drain else ''})", _num(rate),
            f">= {drain_target:,}",
            _verdict(None if rate is None else rate >= drain_target)),
        Row("ingest", "bare COPY of the same rows, rows/s", _num(copy.get("rows_per_s"))),
        Row("ingest", "ratio drain / COPY", _num(data.get("drain_over_copy"), 2),
            f">= {ratio_target}", _verdict(None if data.get("drain_over_copy") is None
                                           else data["drain_over_copy"] >= ratio_target)),
    ]
    if "two_core_ceiling_events_per_s" in drain:
        rows.append(Row("ingest", "CPU-bound ceiling on 2 idle cores, events/s",
                        _num(drain["two_core_ceiling_events_per_s"])))
    for other in data.get("drains", [])[:-1]:  # the other setups, side by side
        rows.append(Row("ingest", f"drain, {other['setup']}: events/s (ratio to COPY)",
                        f"{_num(other['events_per_s'])} "
                        f"({_num(other.get('drain_over_copy'), 2)})"))
    p95 = lat.get("p95_s")
    rows += [
        Row("ingest", f"produce-to-visible latency p50 at {_num(lat.get('produced_rate'))} "
            "events/s, s", _num(lat.get("p50_s"), 2)),
        Row("ingest", f"produce-to-visible latency p95 at {_num(lat.get('produced_rate'))} "
            "events/s, s", _num(p95, 2), f"<= {p95_target:g}",
            _verdict(None if p95 is None else p95 <= p95_target)),
    ]
    if metrics := data.get("metrics"):
        cost_target = constant("ingest.py", "METRICS_COST_TARGET")
        cost = metrics["cost_percent"]
        runs = len(metrics["on_events_per_s"])
        rows.append(Row(
            "ingest", f"metrics cost: drain events/s lost with the stream's metrics served and "
            f"scraped every {metrics['scrape_interval_s']:g} s ({runs} drain(s) each way), %",
            _num(cost, 2), f"<= {cost_target:g}", _verdict(cost <= cost_target)))
        rows.append(Row("ingest", "metrics cost: CPU per event (all processes) added, %",
                        _num(metrics.get("cpu_cost_percent"), 2)))
    return rows


def dbt_rows(data: dict[str, Any], _stdout: str) -> list[Row]:
    target = constant("dbt_build.py", "TARGET_RATIO")
    ratio = data.get("ratio")
    return [
        Row("dbt_build", f"full build, {data.get('days')} days "
            f"({_num(data.get('history_events'))} events), s", _num(data.get("full_run_s"), 1)),
        Row("dbt_build", f"incremental run, 1 new day ({_num(data.get('new_day_events'))} "
            "events), s", _num(data.get("incremental_run_s"), 1)),
        Row("dbt_build", "ratio incremental / full", _num(ratio, 3), f"<= {target}",
            _verdict(None if ratio is None else ratio <= target)),
        Row("dbt_build", "dbt test over the whole warehouse, s", _num(data.get("test_s"), 1)),
    ]


DAG_PATTERNS = {
    "cold": r"parse DBT_MANIFEST cold[^:]*: ([0-9.]+) s",
    "warm": r"parse DBT_MANIFEST warm[^:]*: ([0-9.]+) s",
    "dbt_ls": r"render same dbt groups with DBT_LS[^:]*: ([0-9.]+) s",
    "tasks": r"DAG ecommerce_analytics_pipeline: (\d+) tasks",
}


def dag_figures(stdout: str) -> dict[str, float]:
    """dag_parse.py prints its figures (it has no --json)."""
    found = {}
    for key, pattern in DAG_PATTERNS.items():
        match = re.search(pattern, stdout)
        if match:
            found[key] = float(match.group(1))
    return found


def dag_rows(_data: dict[str, Any], stdout: str) -> list[Row]:
    f = dag_figures(stdout)
    target = constant("dag_parse.py", "TARGET_S")
    cold = f.get("cold")
    rows = [
        Row("dag_parse", f"DAG parse, cold process ({_num(f.get('tasks'))} tasks), s",
            _num(cold, 3), f"<= {target:g}", _verdict(None if cold is None else cold <= target)),
        Row("dag_parse", "DAG re-parse, warm, s", _num(f.get("warm"), 3)),
    ]
    if "dbt_ls" in f:
        rows.append(Row("dag_parse", "same dbt groups rendered with dbt ls, s",
                        _num(f["dbt_ls"], 3)))
    return rows


def quality_rows(data: dict[str, Any], _stdout: str) -> list[Row]:
    target = constant("quality.py", "TARGET_S")
    warm = data.get("warm_s")
    rows = [
        Row("quality", f"GE raw checkpoint over {_num(data.get('rows'))} rows "
            f"({data.get('expectations')} expectations), warm, s", _num(warm, 2),
            f"<= {target:g}", _verdict(None if warm is None else warm <= target)),
        Row("quality", "GE raw checkpoint, first in process, s", _num(data.get("cold_s"), 2)),
        Row("quality", "GE raw checkpoint, failing day, s", _num(data.get("failing_s"), 2)),
    ]
    if "staging_s" in data:
        rows.append(Row("quality", "GE staging checkpoint (dbt view), s",
                        _num(data["staging_s"], 2)))
    return rows


def dag_run_rows(data: dict[str, Any], _stdout: str) -> list[Row]:
    ratio_target = constant("dag_run.py", "TARGET_RATIO")
    day_target = constant("dag_run.py", "TARGET_DAY_S")
    day_events = constant("dag_run.py", "TARGET_DAY_EVENTS")
    rows = []
    for size, f in sorted(data.get("sizes", {}).items(), key=lambda kv: int(kv[0])):
        label = f"{int(size):,} events a day"
        dag_s, ratio = f.get("dag_s"), f.get("ratio")
        rows.append(Row("dag_run", f"a daily run end to end, {label} (`ecom pipeline run`), s",
                        _num(dag_s, 1), *((f"<= {day_target:g}", _verdict(
                            None if dag_s is None else dag_s <= day_target))
                            if int(size) == day_events else ("", ""))))
        rows.append(Row("dag_run", f"the DAG run itself (as Airflow times it), {label}, s",
                        _num(f.get("run_s"), 1)))
        rows.append(Row("dag_run", f"same work run directly, {label}, s",
                        _num(f.get("direct_s"), 1)))
        rows.append(Row("dag_run", f"ratio DAG run / direct, {label}", _num(ratio, 2),
                        f"<= {ratio_target:g}",
                        _verdict(None if ratio is None else ratio <= ratio_target)))
        rows.append(Row("dag_run", f"ratio end to end / direct, {label}",
                        _num(f.get("ratio_end_to_end"), 2)))
    if "backfill" in data:
        b = data["backfill"]
        rows.append(Row("dag_run", f"backfill of {b['days']} days x {b['events_per_day']:,} "
                        "events (`--date .. --to ..`), s", _num(b["wall_s"], 0)))
        rows.append(Row("dag_run", "backfill, s a day", _num(b["per_day_s"], 1)))
    return rows
def security_rows(data: dict[str, Any], _stdout: str) -> list[Row]:
    target = constant("security.py", "TARGET_RATIO")
    copy = data.get("copy_tls_audit_over_plain_none")
    return [
        Row("security", f"COPY of {_num(data.get('rows'))} raw rows with TLS + audit, rows/s",
            _num(data.get("tls_audit", {}).get("copy_rows_per_s"))),
        Row("security", "COPY: TLS + audit / neither", _num(copy, 3), f">= {target}",
            _verdict(None if copy is None else copy >= target)),
        Row("security", "single-row INSERTs: TLS + audit / neither",
            _num(data.get("insert_tls_audit_over_plain_none"), 3)),
        Row("security", "single-row INSERTs: audit only / neither",
            _num(data.get("insert_plain_audit_over_plain_none"), 3)),
    ]


def dr_rows(data: dict[str, Any], _stdout: str) -> list[Row]:
    rpo_target, rto_target = constant("dr.py", "TARGET_RPO_S"), constant("dr.py", "TARGET_RTO_S")
    rpo, rto = data.get("rpo_s"), data.get("rto_s")
    size = data.get("database_bytes")
    return [
        Row("dr", f"RPO, worst case measured (archive_timeout {data.get('wal_timeout_s')} s), s",
            _num(rpo, 1), f"<= {rpo_target:g}",
            _verdict(None if rpo is None else rpo <= rpo_target)),
        Row("dr", f"RTO, restore to a moment of {_num(data.get('events'))} raw events "
            f"({_num(None if size is None else size / 1e9, 2)} GB), s", _num(rto, 1),
            f"<= {rto_target:g}", _verdict(None if rto is None else rto <= rto_target)),
        Row("dr", "full backup (pgBackRest, lz4), s", _num(data.get("backup_s"), 1)),
    ]
def dashboard_rows(data: dict[str, Any], _stdout: str) -> list[Row]:
    target_s = constant("dashboard.py", "TARGET_S")
    target_ratio = constant("dashboard.py", "TARGET_RATIO")
    size = f"{data.get('days')} days x {_num(data.get('events_per_day'))} events"
    rows = []
    for page, p in data.get("pages", {}).items():
        data_s, ratio = p.get("data_s"), p.get("ratio")
        rows += [
            Row("dashboard", f"{page} page, data time of its widest view ({size}), s",
                _num(data_s, 3), f"<= {target_s:g}",
                _verdict(None if data_s is None else data_s <= target_s)),
            Row("dashboard", f"{page} page, data time / the same SQL run directly",
                f"{_num(ratio, 2)}x", f"<= {target_ratio:g}x",
                _verdict(None if ratio is None else ratio <= target_ratio)),
        ]
    return rows


ROWS: dict[str, Callable[[dict[str, Any], str], list[Row]]] = {
    "simulate": simulate_rows, "ingest": ingest_rows, "dbt_build": dbt_rows,
    "dag_parse": dag_rows, "quality": quality_rows,
    "security": security_rows, "dr": dr_rows, "dashboard": dashboard_rows,
    "dag_run": dag_run_rows,
}


# ---- running ------------------------------------------------------------------------------

@dataclass
class Outcome:
    benchmark: Benchmark
    command: list[str]
    exit_code: int
    seconds: float
    load_before: float
    rows: list[Row] = field(default_factory=list)
    error: str = ""


def run(bench: Benchmark, quick: bool, out_dir: Path) -> Outcome:
    json_path = out_dir / f"{bench.name}.json"
    json_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH / bench.script), *(bench.quick if quick else bench.full)]
    if bench.json_output:
        cmd += ["--json", str(json_path)]
    shown = " ".join(["bench/" + bench.script, *cmd[2:]]).replace(str(REPO) + "/", "")
    print(f"\n=== {shown}", flush=True)
    load = os.getloadavg()[0]
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"  {line}", end="", flush=True)
            lines.append(line)
    seconds = time.monotonic() - started
    stdout = "".join(lines)
    (out_dir / f"{bench.name}.log").write_text(stdout)
    outcome = Outcome(bench, [shown], proc.returncode, seconds, load)
    data: dict[str, Any] = {}
    if bench.json_output:
        if json_path.is_file():
            data = json.loads(json_path.read_text())
        else:
            outcome.error = f"exit {proc.returncode}, no figures written (see {bench.name}.log)"
            return outcome
    try:
        outcome.rows = ROWS[bench.name](data, stdout)
    except (KeyError, TypeError, ValueError) as exc:
        outcome.error = f"could not read its figures ({exc}); see {bench.name}.log"
    if proc.returncode != 0 and not outcome.error:
        outcome.error = f"exit {proc.returncode} (a target missed, or see {bench.name}.log)"
    return outcome


# ---- machine ------------------------------------------------------------------------------

def _first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else "not found"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _postgres() -> str:
    from ecom.config import Settings
    from ecom.errors import UserError
    from ecom.stack.postgres import find_binaries

    try:
        pg_ctl = find_binaries(Settings.from_env().pg_bin_dir).pg_ctl
    except UserError:
        return "not found"
    return _first_line([pg_ctl, "--version"])


def machine() -> dict[str, str]:
    git = _first_line(["git", "-C", str(REPO), "log", "-1", "--format=%h (%cs)"])
    return {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "commit": git,
        "CPU": f"{_cpu_model()}, {os.cpu_count()} cores",
        "memory": _memory(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Java": _first_line(["java", "-version"]),
        "PostgreSQL": _postgres(),
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# ---- report -------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _previous(report: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Figure and run lines per benchmark of an earlier report, kept when `--only` re-runs
    some benchmarks; each run line says when and at which commit it was measured."""
    if not report.is_file():
        return {}
    text = report.read_text()
    measured = re.search(r"^\| date \(UTC\) \| (.*?) \|$", text, re.M)
    commit = re.search(r"^\| commit \| (.*?) \|$", text, re.M)
    when = f"{measured[1] if measured else '?'}, {commit[1] if commit else '?'}"
    names = {b.name for b in BENCHMARKS}
    kept: dict[str, tuple[list[str], list[str]]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if not line.startswith("| ") or cells[0] not in names:
            continue
        figures, runs = kept.setdefault(cells[0], ([], []))
        if section == "Figures":
            figures.append(line)
        elif section == "Runs":
            runs.append(line if len(cells) >= 6 else line + f" {when} |")
    return kept


def render(machine_info: dict[str, str], outcomes: list[Outcome], quick: bool,
           kept: dict[str, tuple[list[str], list[str]]] | None = None) -> str:
    kept = kept or {}
    ran = {o.benchmark.name: o for o in outcomes}
    when = f"{machine_info['date (UTC)']}, {machine_info['commit']}"
    lines = ["# Benchmark results", ""]
    if quick:
        lines += ["**Quick mode** (small sizes): checks the harness; not reference figures, so "
                  "no verdict against the targets (set for the full sizes).", ""]
    lines += ["Written by `bench/report.py`; each figure was measured in one run of its "
              "benchmark on the machine below (when and at which commit: the Runs table). "
              "Other work on the machine lowers every figure: see each benchmark's load "
              "average.", "", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in machine_info.items()]
    lines += ["", "## Figures", "", "| benchmark | figure | value | target | verdict |",
              "|---|---|---:|---|---|"]
    for bench in BENCHMARKS:
        outcome = ran.get(bench.name)
        if outcome is None:
            lines += kept.get(bench.name, ([], []))[0]
            continue
        for row in outcome.rows:
            verdict = "(quick)" if quick and row.verdict else row.verdict
            lines.append(f"| {row.benchmark} | {_cell(row.figure)} | {row.value} | "
                         f"{row.target} | {verdict} |")
        if outcome.error and not outcome.rows:
            lines.append(f"| {outcome.benchmark.name} | (no figures) | | | {outcome.error} |")
    lines += ["", "## Runs", "", "| benchmark | command | wall time | load average before | "
              "result | measured (UTC), commit |", "|---|---|---:|---:|---|---|"]
    for bench in BENCHMARKS:
        o = ran.get(bench.name)
        if o is None:
            lines += kept.get(bench.name, ([], []))[1]
            continue
        lines.append(f"| {o.benchmark.name} | `{_cell(o.command[0])}` | {o.seconds:,.0f} s | "
                     f"{o.load_before:.2f} | {_cell(o.error) or 'ok'} | {when} |")
    lines += ["", "Each benchmark's full output is written to `bench/out/<name>.log` "
              "(not committed).", ""]
    return "\n".join(lines)


README = REPO / "README.md"
README_TABLE = re.compile(r"(<!-- bench:start[^\n]*-->\n)(.*?)(\n<!-- bench:end -->)", re.S)


def figures_table(report: str) -> str:
    """The Figures table of a report (header included)."""
    section = report.split("## Figures", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.strip().splitlines() if line.startswith("|"))


def copy_to_readme(report: str) -> None:
    """The README's benchmark table is the reference report's Figures table."""
    text = README.read_text()
    if README_TABLE.search(text):
        README.write_text(README_TABLE.sub(
            lambda m: m[1] + figures_table(report) + m[3], text, count=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (a few minutes), report to bench/out/RESULTS-quick.md")
    parser.add_argument("--only", help="comma-separated benchmarks to run (default all: "
                        + ",".join(b.name for b in BENCHMARKS) + ")")
    parser.add_argument("--out", type=Path, help="report path (default bench/RESULTS.md, "
                        "or bench/out/RESULTS-quick.md with --quick)")
    args = parser.parse_args()

    chosen = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - {b.name for b in BENCHMARKS})
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                         + ", ".join(b.name for b in BENCHMARKS))
        chosen = [b for b in BENCHMARKS if b.name in names]
    out = args.out or (OUT / "RESULTS-quick.md" if args.quick else BENCH / "RESULTS.md")
    OUT.mkdir(parents=True, exist_ok=True)

    machine_info = machine()
    print("machine: " + "; ".join(f"{k}: {v}" for k, v in machine_info.items()))
    started = time.monotonic()
    outcomes = [run(b, args.quick, OUT) for b in chosen]
    out.parent.mkdir(parents=True, exist_ok=True)
    # with --only, the figures of the benchmarks not run stay (their runs say when)
    kept = _previous(out) if args.only and not args.quick else {}
    report = render(machine_info, outcomes, args.quick, kept)
    out.write_text(report)
    if out == BENCH / "RESULTS.md":
        copy_to_readme(report)
    failed = [o.benchmark.name for o in outcomes if not o.rows]
    print(f"\nreport written to {out} after {time.monotonic() - started:,.0f} s"
          + (f"; no figures from: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
