"""Shared fixtures: a private embedded stack (PostgreSQL + tansu) per test session.

The stack lives in a temporary data dir on free ports, so test runs never touch the
developer's `.local` stack and parallel runs do not collide.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ecom.config import REPO_ROOT, Settings, isolated_settings
from ecom.ports import free_port
from ecom.stack import broker, postgres
from ecom.stack.manager import up

ECOM = [sys.executable, "-m", "ecom_app.cli"]


def _private_settings(data_dir: Path, **overrides: object) -> Settings:
    return isolated_settings(data_dir, free_port(), free_port(), **overrides)


@contextmanager
def private_stack(tmp_path_factory: pytest.TempPathFactory, name: str,
                  **overrides: object) -> Iterator[Settings]:
    """A running private stack (migrated, topics created), removed on exit. Modules whose
    scenario must not see other tests' deliberately corrupted rows open their own.
    `overrides`: settings to change (e.g. `backup_enabled=True`: WAL archiving is off)."""
    settings, _ = up(_private_settings(tmp_path_factory.mktemp(name), **overrides))
    try:
        yield settings
    finally:
        broker.stop(settings)
        postgres.destroy(settings)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of the shared private stack with migrations applied and topics created."""
    with private_stack(tmp_path_factory, "ecom-stack") as settings:
        yield settings


@pytest.fixture(scope="session")
def settings(stack: Settings) -> Settings:
    return stack


def run_ecom(settings: Settings, *args: str, timeout: float = 600, check: bool = True,
             **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run the `ecom` CLI as a user would, against the given settings."""
    proc = subprocess.run(
        [*ECOM, *args], cwd=REPO_ROOT, env=settings.subprocess_env(), text=True,
        capture_output=True, timeout=timeout, check=False, **kwargs,  # type: ignore[arg-type]
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"ecom {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
            f"stderr:\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def ecom_cli() -> object:
    """`ecom_cli(settings, *args)` -> CompletedProcess (see run_ecom)."""
    return run_ecom
