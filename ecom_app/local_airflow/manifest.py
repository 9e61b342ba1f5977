"""Keep the dbt manifest the DAG renders from current: `dbt parse` when it is missing or
older than the project's sources, so the DAG never renders a stale graph (the DAG file
itself only reads it: parse time <= 1 s)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ecom_pipeline.manifest import DBT_BIN, manifest_path

from ecom.config import Settings
from ecom.errors import UserError

SOURCE_DIRS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")


def project_sources(project_dir: Path) -> list[Path]:
    """Files whose change requires a new manifest."""
    files = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for name in SOURCE_DIRS:
        files.extend(p for p in (project_dir / name).rglob("*") if p.is_file())
    return [f for f in files if f.is_file()]


def is_stale(project_dir: Path) -> bool:
    manifest = manifest_path(project_dir)
    if not manifest.is_file():
        return True
    built = manifest.stat().st_mtime
    return any(f.stat().st_mtime > built for f in project_sources(project_dir))


def ensure_manifest(settings: Settings) -> Path:
    """Run `dbt parse` when the manifest is missing or stale; return its path."""
    project_dir = settings.dbt_project_dir
    if not (project_dir / "dbt_project.yml").is_file():
        raise UserError(f"No dbt project at {project_dir}: the DAG needs dbt_project/.")
    if is_stale(project_dir):
        proc = subprocess.run(
            [str(DBT_BIN), "parse", "--project-dir", str(project_dir),
             "--profiles-dir", str(project_dir), "--quiet"],
            env=settings.subprocess_env(), text=True, capture_output=True, check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            raise UserError(f"`dbt parse` failed, so the DAG cannot be rendered:\n{tail}")
    return manifest_path(project_dir)

