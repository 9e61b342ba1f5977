"""What the `ecommerce_analytics_pipeline` DAG needs at parse and run time: its steps, the
Cosmos dbt groups, the callbacks and the execution log (the orchestration layer); and the
steps of the `ecommerce_maintenance` DAG (`maintenance`).

It lives beside the DAG files, as a package the project installs (`pyproject.toml` maps it
from `airflow/dags/`), so the DAG and any other code import it with no change to the
import path; the repository's `airflow/` folder is not a package (it would shadow the real
`airflow`). It imports the stages (ingestion, expectations, operations) and the shared `ecom` layer;
only the top layer (`ecom_app`) imports it.
"""

DAG_ID = "ecommerce_analytics_pipeline"
