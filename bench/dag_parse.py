"""DAG parse time of `ecommerce_analytics_pipeline` (target <= 1 s), and the same dbt groups
rendered with `dbt ls` instead of the manifest, for comparison.

Each figure comes from a fresh Python process (nothing imported or cached beforehand):
  1. DBT_MANIFEST: Airflow's DagBag parses the real DAG file (cold = first parse in the
     process, Cosmos imported; warm = the next parses, as a long-lived DAG processor);
  2. DBT_LS: the same two Cosmos task groups built with `LoadMode.DBT_LS` (Cosmos' dbt ls
     cache disabled, so every render runs `dbt ls`).
No database or broker is needed; the manifest is refreshed with `dbt parse` if stale.

    .venv/bin/python bench/dag_parse.py [--no-dbt-ls]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ecom.config import REPO_ROOT, load_settings
from ecom_app.local_airflow.airflow_home import airflow_env
from ecom_app.local_airflow.manifest import ensure_manifest

TARGET_S = 1.0

DBT_LS_RENDER = """
import json, time
t0 = time.perf_counter()
from airflow.sdk import DAG
from cosmos.constants import LoadMode
from ecom.config import load_settings
from ecom_pipeline.dbt_groups import MARTS_SELECT, STAGING_SELECT, dbt_group
imported = time.perf_counter() - t0
t1 = time.perf_counter()
with DAG("bench_dbt_ls", schedule=None) as dag:
    dbt_group("transform_staging", STAGING_SELECT, load_settings(), multi_parent_tests=False,
              load_method=LoadMode.DBT_LS)
    dbt_group("transform_marts", MARTS_SELECT, load_settings(), load_method=LoadMode.DBT_LS)
print(json.dumps({"render_seconds": time.perf_counter() - t1, "import_seconds": imported,
                  "tasks": len(dag.tasks)}))
"""


def _env(home: Path) -> dict[str, str]:
    env = airflow_env(load_settings())
    env.update({
        "AIRFLOW_HOME": str(home),  # throwaway: parsing needs no metadata DB
        "AIRFLOW__COSMOS__ENABLE_CACHE_DBT_LS": "False",
    })
    return env


def _run(code_or_module: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, *code_or_module], env=env, text=True,
                          capture_output=True, check=False, cwd=REPO_ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"measurement failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per mode")
    parser.add_argument("--no-dbt-ls", action="store_true", help="skip the dbt ls comparison")
    args = parser.parse_args()

    ensure_manifest(load_settings())
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as tmp:
        env = _env(Path(tmp))
        cold, warm, tasks = [], [], 0
        for _ in range(args.runs):
            shape = _run(["-m", "ecom_app.local_airflow.dag_shape"], env)
            if shape["import_errors"]:
                sys.exit(f"the DAG does not import: {shape['import_errors']}")
            cold.append(shape["parse_seconds"][0])
            warm.extend(shape["parse_seconds"][1:])
            tasks = len(shape.get("tasks", []))
        manifest_cold = statistics.median(cold)
        print(f"DAG ecommerce_analytics_pipeline: {tasks} tasks")
        print(f"parse DBT_MANIFEST cold (median of {len(cold)} fresh processes): "
              f"{manifest_cold:.3f} s   [target <= {TARGET_S:.1f} s: "
              f"{'met' if manifest_cold <= TARGET_S else 'MISSED'}]")
        print(f"parse DBT_MANIFEST warm (median of {len(warm)} re-parses): "
              f"{statistics.median(warm):.3f} s")
        if args.no_dbt_ls:
            return
        ls_runs = [_run(["-c", DBT_LS_RENDER], env) for _ in range(args.runs)]
        ls_render = statistics.median(r["render_seconds"] for r in ls_runs)
        print(f"render same dbt groups with DBT_LS (median of {len(ls_runs)}, cache off): "
              f"{ls_render:.3f} s, {ls_runs[0]['tasks']} dbt tasks")
        print(f"ratio DBT_LS / DBT_MANIFEST (cold parse): {ls_render / manifest_cold:.1f}x")


if __name__ == "__main__":
    main()
