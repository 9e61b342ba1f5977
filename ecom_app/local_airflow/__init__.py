"""Airflow on this machine against the embedded stack: AIRFLOW_HOME, `airflow standalone`,
`ecom pipeline run` (one DAG run per day with `airflow dags test`) and a parse of the DAGs
folder as Airflow does it. Not shipped with the DAG: a deployment's Airflow has its own."""

from ecom.config import REPO_ROOT

DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
