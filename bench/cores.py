"""Run one benchmark pinned to 1, then 2 CPUs, and print its figures side by side.

The capacity model (docs/scaling.md) gives every stage's throughput with 1 and 2 cores.
`bench/ingest.py` varies Spark's cores itself; for the others (the simulator and broker,
dbt, Great Expectations) this runs the whole benchmark - its private PostgreSQL and
broker included, since children inherit the CPU affinity - on the first N CPUs:

    .venv/bin/python bench/cores.py --cores 1,2 -- bench/dbt_build.py --days 3
    .venv/bin/python bench/cores.py -- bench/quality.py --rows 200000 --history 1

Each run's JSON (the benchmark's `--json`) goes to bench/out/cores-<script>-<n>.json, and
the numeric figures of both runs are printed next to each other with their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"


def flat(data: object, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON document, keyed by their dotted path."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flat(value, f"{prefix}{key}."))
    elif isinstance(data, int | float) and not isinstance(data, bool):
        out[prefix.rstrip(".")] = float(data)
    return out


def run(script: str, args: list[str], cores: int) -> dict[str, float]:
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    out = OUT / f"cores-{Path(script).stem}-{cores}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"== {script} on {cores} CPU(s) {cpus}, load average {os.getloadavg()[0]:.1f}",
          flush=True)
    subprocess.run([sys.executable, script, *args, "--json", str(out)], cwd=REPO, check=True,
                   preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    return flat(json.loads(out.read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="1,2", help="CPU counts to pin to (default 1,2)")
    parser.add_argument("script", help="the benchmark script, then its arguments after --")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    counts = [int(c) for c in args.cores.split(",")]
    rest = [a for a in args.args if a != "--"]
    figures = {n: run(args.script, rest, n) for n in counts}
    keys = sorted(set().union(*(f.keys() for f in figures.values())))
    print(f"\n{'figure':<52}" + "".join(f"{f'{n} CPU(s)':>14}" for n in counts) + "   ratio")
    for key in keys:
        values = [figures[n].get(key) for n in counts]
        cells = "".join(f"{v:>14,.2f}" if v is not None else f"{'-':>14}" for v in values)
        ratio = (f"{values[-1] / values[0]:7.2f}" if values[0] and values[-1] is not None
                 else "")
        print(f"{key:<52}{cells}   {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
