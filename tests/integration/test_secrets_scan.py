"""No password in any file the demo's pipeline writes (README, "Security").

A private stack runs what `make demo` runs for one day: simulate, stream-ingest, the
Airflow DAG (`ecom pipeline run`: Spark extract, GE gates, Cosmos dbt groups, publish,
report), `dbt docs generate` and GE Data Docs. Then every file written under its data dir,
its PostgreSQL cluster dir (server log and audit trail included) and the project (dbt
target and logs, GE's uncommitted dir and Data Docs, Spark's and Airflow's logs,
manifests) is searched for each password, except `secrets.env` (mode 600), where
`ecom stack up` keeps the generated ones: the PostgreSQL roles' and a Kafka SASL
password (set, though the embedded broker does not use it, so Spark is handed it the way
a real cluster's executors are), and the alert webhook URL (a secret too). Airflow's
metadata database is also read table by table: the serialized DAG and the rendered template
fields (the dbt tasks' `env` among them) must hold none.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from ecom.config import REPO_ROOT, ROLES
from ecom.stack import postgres
from ecom_app.local_airflow.airflow_home import home_dir
from ecom_app.seed import DBT
from tests.conftest import private_stack, run_ecom

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.spark]

DAY = date(2025, 4, 2)
KAFKA_PASSWORD = "kafka-sasl-Qx7-never-printed"
# a webhook URL is a secret (whoever holds it can post); the run succeeds, so nothing is posted
WEBHOOK_URL = "https://hooks.example.invalid/services/T0/B0/webhook-Qx7-never-printed"
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".cache"}


def _files(root: Path, since: float) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(folder) / name
            try:
                if path.is_file() and path.stat().st_mtime >= since:
                    yield path
            except OSError:
                continue


def test_no_password_in_any_file_the_pipeline_writes(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    started = time.time() - 1
    with private_stack(tmp_path_factory, "ecom-secrets") as stack:
        settings = stack.replace(kafka_sasl_password=KAFKA_PASSWORD,
                                 alert_webhook_url=WEBHOOK_URL)
        secrets = {f"pg_{role}_password": settings.password(role) for role in ROLES}
        secrets["kafka_sasl_password"] = KAFKA_PASSWORD
        secrets["alert_webhook_url"] = WEBHOOK_URL
        assert all(len(s) >= 16 for s in secrets.values())

        run_ecom(settings, "simulate", "backfill", "--days", "1", "--end-date",
                 DAY.isoformat(), "--events-per-day", "1500", "--seed", "20250402",
                 "--bad-rate", "0.01", "--no-progress")
        run_ecom(settings, "ingest", "stream", "--available-now", timeout=900)
        run_ecom(settings, "pipeline", "run", "--date", DAY.isoformat(), timeout=1800)
        shown = run_ecom(settings, "env").stdout  # what a person sees: no password
        run_ecom(settings, "quality", "docs", timeout=900)
        docs = subprocess.run(
            [str(DBT), "docs", "generate", "--project-dir", "dbt_project", "--profiles-dir",
             "dbt_project", "--quiet"], cwd=REPO_ROOT, env=settings.subprocess_env(),
            capture_output=True, text=True, timeout=900, check=False)
        assert docs.returncode == 0, docs.stdout[-3000:]
        assert not [name for name, s in secrets.items() if s in shown + docs.stdout]

        roots = [settings.data_dir, postgres.cluster_dir(settings), REPO_ROOT]
        scanned: dict[Path, int] = {}
        leaks: list[str] = []
        # the one file meant to hold them: <data dir>/secrets.env, private to its owner
        assert stat.S_IMODE(settings.secrets_file.stat().st_mode) == 0o600
        for root in roots:
            for path in _files(root, started):
                if path in scanned or path == settings.secrets_file:
                    continue
                data = path.read_bytes()
                scanned[path] = len(data)
                leaks += [f"{name} in {path}" for name, s in secrets.items()
                          if s.encode() in data]
        written = {str(p) for p in scanned}
        # the scan saw what it must: Airflow's DB and task logs, dbt's target, GE's docs,
        # Spark's and the server's logs (audit trail included)
        for expected in ("airflow.db", "/dbt_project/target/manifest.json",
                         "/dbt_project/target/catalog.json", "/uncommitted/data_docs/",
                         "/logs/", "server.log", "/manifests/"):
            assert any(expected in p for p in written), expected

        db = sqlite3.connect(home_dir(settings) / "airflow.db")
        try:
            serialized = db.execute("select count(*) from serialized_dag").fetchone()[0]
            rendered = db.execute(
                "select task_id, rendered_fields from rendered_task_instance_fields").fetchall()
        finally:
            db.close()
        assert serialized >= 1 and rendered
        # the dbt tasks' fields are there (their `env` is a template field; the settings
        # reach dbt's environment only when the build runs, never a rendered field)
        dbt_tasks = {t for t, _ in rendered if t.startswith("transform_")}
        print(f"\nrendered fields of {len(rendered)} tasks, {len(dbt_tasks)} dbt tasks")
        assert dbt_tasks, sorted(t for t, _ in rendered)
        rendered_text = "\n".join(r[1] or "" for r in rendered)
        leaks += [f"{name} in rendered_task_instance_fields" for name, s in secrets.items()
                  if s in rendered_text]

        print(f"\nsecrets scan: {len(scanned):,} files ({sum(scanned.values()) / 1e6:.1f} MB) "
              f"written by the pipeline, {len(rendered)} rendered task fields, "
              f"{len(secrets)} passwords: {len(leaks)} found")
        assert leaks == []
