"""Orchestration helpers for the `ecommerce_analytics_pipeline` DAG and the `ecom airflow` /
`ecom pipeline` commands.

Lives beside the DAG file (Airflow puts the dags folder on `sys.path`), not in a top-level
package: the repository's `airflow/` folder must not shadow the real `airflow` package.
Stages (ecom, ingestion, expectations) never import this package; it imports them.
"""

from pathlib import Path

DAG_ID = "ecommerce_analytics_pipeline"
DAGS_FOLDER = Path(__file__).resolve().parent.parent
