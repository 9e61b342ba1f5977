"""`python -m ecom_app.sql_lint`: sqlfluff over the dbt models, compiled by dbt itself.

sqlfluff's dbt templater compiles every model through dbt, and dbt asks the warehouse
whether each incremental model exists (`is_incremental()`), so linting needs a database.
This starts a throwaway private PostgreSQL (its own data dir and port, the project's
migrations applied, nothing else), lints against it and removes it: `make lint` runs the
same on a fresh clone as on a developer's machine, without touching their stack. Its
warehouse is empty, so the templater renders the full-build branch of every incremental
model; `--stack` lints against the configured warehouse instead (with the marts built,
that renders the incremental branches).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ecom.config import REPO_ROOT, Settings, isolated_settings, load_settings
from ecom.errors import UserError
from ecom.ports import free_port
from ecom.stack import postgres
from ecom.stack.secrets import ensure_secrets
from ecom.warehouse.migrate import migrate

SQLFLUFF = Path(sys.executable).with_name("sqlfluff")


def lint(settings: Settings, paths: list[str]) -> int:
    """Run `sqlfluff lint` from the dbt project with the settings' environment."""
    proc = subprocess.run([str(SQLFLUFF), "lint", *paths], cwd=REPO_ROOT / "dbt_project",
                          env=settings.subprocess_env(), check=False)
    return proc.returncode


def lint_on_private_warehouse(paths: list[str]) -> int:
    work = Path(tempfile.mkdtemp(prefix="ecom-sqllint-"))
    settings = ensure_secrets(isolated_settings(work, free_port(), free_port()))
    try:
        postgres.start(settings)
        postgres.ensure_database(settings)
        migrate(settings)
        return lint(settings, paths)
    finally:
        postgres.destroy(settings)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("paths", nargs="*", default=["models", "analyses"],
                        help="paths under dbt_project/ (default: models analyses)")
    parser.add_argument("--stack", action="store_true",
                        help="lint against the configured warehouse (ECOM_PG_*)")
    args = parser.parse_args(argv)
    try:
        if args.stack:
            return lint(load_settings(), args.paths)
        return lint_on_private_warehouse(args.paths)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
