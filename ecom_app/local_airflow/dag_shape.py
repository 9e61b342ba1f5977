"""Parse the dags folder as Airflow's DAG processor does and describe the pipeline DAG.

`python -m ecom_app.local_airflow.dag_shape` (with the Airflow
environment of `airflow_home.airflow_env`) prints JSON: parse time, import errors, and
every task with its upstream tasks. The DAG import test and `bench/dag_parse.py` use it,
in a fresh process, so that nothing is imported or cached beforehand.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ecom_pipeline import DAG_ID

from ecom_app.local_airflow import DAGS_FOLDER


def describe(repeat: int = 3) -> dict[str, Any]:
    """Parse the dags folder `repeat` times (the first one cold); describe the DAG."""
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    airflow_import_s = time.perf_counter() - started
    timings = []
    bag = None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
        timings.append(time.perf_counter() - t0)
    assert bag is not None
    dag = bag.dags.get(DAG_ID)
    out: dict[str, Any] = {
        "airflow_import_seconds": airflow_import_s,
        "parse_seconds": timings,
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dag_ids": sorted(bag.dags),
    }
    if dag is None:
        return out
    out.update({
        "schedule": getattr(dag.timetable, "summary", str(dag.timetable)),
        "timetable": type(dag.timetable).__name__,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tasks": [
            {
                "task_id": t.task_id,
                "operator": type(t).__name__,
                "operator_module": type(t).__module__,
                "upstream": sorted(t.upstream_task_ids),
                "retries": t.retries,
                "retry_exponential_backoff": t.retry_exponential_backoff,
                "execution_timeout_s": t.execution_timeout.total_seconds()
                if t.execution_timeout else None,
                "callbacks": {
                    kind: bool(getattr(t, kind, None))
                    for kind in ("on_execute_callback", "on_success_callback",
                                 "on_failure_callback", "on_retry_callback")
                },
                "trigger_rule": str(t.trigger_rule),
                "dbt_select": getattr(t, "select", None),
                "dbt_models": getattr(t, "models", None),
                "dbt_node": getattr(t, "model_unique_id", None),
                "dbt_indirect_selection": getattr(t, "indirect_selection", None),
                "dbt_tests_per_model": getattr(t, "tests_per_model", None),
            }
            for t in dag.tasks
        ],
    })
    return out


if __name__ == "__main__":
    print(json.dumps(describe()))
