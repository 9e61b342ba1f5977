"""The private PostgreSQL the warehouse benchmarks run on, and their progress lines.

Each benchmark starts its own migrated cluster on free ports in a temporary data dir, so
it never touches the demo's stack, and removes it at the end (`postgres.destroy`).
"""

from __future__ import annotations

import time
from pathlib import Path

from ecom.config import Settings, isolated_settings
from ecom.ports import free_port
from ecom.stack import postgres
from ecom.stack.secrets import ensure_secrets
from ecom.warehouse.migrate import migrate


def step(label: str) -> float:
    """Print a progress line; the time it started."""
    print(f"- {label} ...", flush=True)
    return time.perf_counter()


def private_settings(data_dir: Path) -> Settings:
    """Settings of a private stack in `data_dir` on free ports, with generated secrets."""
    return ensure_secrets(isolated_settings(data_dir, free_port(), free_port()))


def start_migrated(settings: Settings) -> None:
    """Start the private cluster, create its database and migrate it, timing it."""
    started = step(f"private PostgreSQL on port {settings.pg_port}")
    postgres.start(settings)
    postgres.ensure_database(settings)
    migrate(settings)
    print(f"  {time.perf_counter() - started:.1f} s")
