"""The local Airflow installation: AIRFLOW_HOME under the data dir, its environment, its DB.

- AIRFLOW_HOME is `<data dir>/airflow` (airflow.cfg, logs, the generated admin password).
- The dags folder is this repository's `airflow/dags`.
- Metadata DB: SQLite in AIRFLOW_HOME (`airflow.db`), as `airflow standalone` does by
  default. Airflow 3 also opens an async engine on its metadata DB, and for PostgreSQL that
  needs an async driver (asyncpg) this project does not otherwise need; SQLite's is already
  installed (aiosqlite). Local use only: a production Airflow keeps its own PostgreSQL.
  The file is in write-ahead-log mode (`use_wal`): Airflow commits a dozen times per task,
  and SQLite's default rollback journal syncs the disk ~3 times per commit (~13 ms here,
  ~1 ms with the WAL); readers (the UI) no longer block the writer either.
- Every Airflow process gets the project's `ECOM_*` settings in its environment, so tasks,
  dbt (profiles.yml reads `env_var('ECOM_...')`) and Spark see the same configuration.
  Warehouse passwords travel in the environment only, never into AIRFLOW_HOME.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from ecom.config import Settings
from ecom.errors import UserError
from ecom_app.local_airflow import DAGS_FOLDER

AIRFLOW_BIN = Path(sys.executable).with_name("airflow")


def home_dir(settings: Settings) -> Path:
    return settings.data_dir / "airflow"


def password_file(settings: Settings) -> Path:
    """Where `airflow standalone` (simple auth manager) writes the generated admin password."""
    return home_dir(settings) / "simple_auth_manager_passwords.json.generated"


def metadata_conn(settings: Settings) -> str:
    """SQLAlchemy URL of Airflow's metadata database."""
    return f"sqlite:///{home_dir(settings) / 'airflow.db'}"


def airflow_env(settings: Settings, port: int | None = None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for any `airflow ...` subprocess run against the embedded stack."""
    home = home_dir(settings)
    port = port or settings.airflow_port
    env = settings.subprocess_env()
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_conn(settings),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos_cache"),
        # no phoning home from an offline-friendly local setup (each try can stall a task)
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # the watcher builds are never retried (ecom_pipeline.dbt_groups): no copy of every
        # XCom into an Airflow Variable after each dbt event (a growing write per event; on
        # failure Cosmos still writes it once)
        "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY": "False",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        # the webhook URL is a secret too: mask it like the passwords (the dbt tasks' env is
        # shown in their rendered fields)
        "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "webhook_url",
        # the Airflow processes inherit this interpreter's venv (dbt, spark, airflow on PATH)
        "PATH": f"{AIRFLOW_BIN.parent}:{env.get('PATH', '')}",
    })
    env.update(extra or {})
    return env


def run_airflow(settings: Settings, *args: str, timeout: float = 600,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one `airflow` CLI command; a failure becomes a UserError with its last lines."""
    proc = subprocess.run(
        [str(AIRFLOW_BIN), *args], env=env or airflow_env(settings), text=True,
        capture_output=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise UserError(f"`airflow {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc


def prepare(settings: Settings) -> Path:
    """Create AIRFLOW_HOME and migrate its metadata database (skipped when current)."""
    home = home_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    conn = metadata_conn(settings)
    stamp = home / ".db-migrated"
    if not (home / "airflow.db").is_file():
        stamp.unlink(missing_ok=True)
    fingerprint = hashlib.sha256(f"{version('apache-airflow')}|{conn}".encode()).hexdigest()
    if not (stamp.is_file() and stamp.read_text().strip() == fingerprint):
        run_airflow(settings, "db", "migrate")
        stamp.write_text(fingerprint + "\n")
    use_wal(home / "airflow.db")
    return home


def use_wal(db: Path) -> None:
    """Put the SQLite file in write-ahead-log mode (it stays so; a no-op when it is). Needs a
    moment with no other writer: when Airflow holds the file, it is left as it is."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=1)) as conn:
            if conn.execute("pragma journal_mode").fetchone()[0] != "wal":
                conn.execute("pragma journal_mode=wal")
    except sqlite3.OperationalError:  # locked by a running Airflow: next time
        pass

