"""`ecom warehouse audit` and `ecom warehouse clone-masked`: the security commands.

Added to the `ecom warehouse` group by `add_commands` (one line in `ecom_app.cli`).
"""

from __future__ import annotations

import typer
from rich.console import Console

from ecom.config import load_settings
from ecom.errors import UserError
from ecom.stack import postgres
from ecom.warehouse.audit import read_entries
from ecom.warehouse.clone import clone_masked

console = Console()


def audit(
    role: str = typer.Option("", "--role", help="Only statements of this role (e.g. loader)."),
    audit_class: str = typer.Option(
        "", "--class", help="Only this class: ddl, role (GRANT/REVOKE/roles) or write."),
    contains: str = typer.Option("", "--contains",
                                 help="Only entries whose object or statement contains this."),
    limit: int = typer.Option(50, "--limit", min=0, help="Show the newest N (0: all)."),
) -> None:
    """Show the audit trail (pgaudit) of the embedded PostgreSQL: who changed what.

    Every DDL statement, role or privilege change and write is one entry of the server log
    (`<cluster dir>/server.log`); this prints the newest, one line each (grep-friendly):
    time, role@database, class, command, object, statement."""
    settings = load_settings()
    if settings.pg_mode != "embedded":
        raise UserError(
            "The audit trail of an external PostgreSQL is in that server's own log: enable "
            "pgaudit there (pgaudit.log = 'ddl, role, write') and read it where it logs.")
    log_file = postgres.log_file(settings)
    if not log_file.is_file():
        raise UserError(f"There is no server log at {log_file}: run `ecom stack up` first.")
    entries = read_entries(log_file, role=role or None, audit_class=audit_class or None,
                           contains=contains or None)
    shown = entries[-limit:] if limit else entries
    print(f"# audit trail: {len(shown)} of {len(entries)} entries ({log_file})")
    for entry in shown:
        statement = " ".join(entry.statement.split())
        statement = statement if len(statement) <= 160 else statement[:157] + "..."
        print(f"{entry.time}  {entry.role}@{entry.database}  {entry.audit_class}  "
              f"{entry.command}  {entry.object_name or '-'}  {statement}")


def clone(
    target: str = typer.Option("", "--target",
                               help="Name of the copy (default: <ECOM_PG_DATABASE>_dev)."),
    replace: bool = typer.Option(False, "--replace", help="Drop and re-create an existing copy."),
) -> None:
    """Copy raw and ops into a new database with PII masked (IP -> network, user agent
    versions -> 0, the same inside raw_data and dead letters), for development.

    Build the marts on it with dbt: ECOM_PG_DATABASE=<copy> dbt build ..."""
    settings = load_settings()
    name = target or f"{settings.pg_database}_dev"
    console.print(f"cloning {settings.pg_database} into {name} with PII masked ...")
    report = clone_masked(settings, name, replace=replace,
                          log=lambda line: console.print(line, highlight=False, markup=False))
    for skipped in report.skipped:
        console.print(f"  skipped {skipped}: not in the project's migrations")
    total = sum(report.rows.values())
    console.print(f"done: {total:,} rows in {len(report.rows)} tables. Build the marts on it: "
                  f"ECOM_PG_DATABASE={name} .venv/bin/dbt build --project-dir dbt_project "
                  "--profiles-dir dbt_project", highlight=False, markup=False)


def add_commands(warehouse_app: typer.Typer) -> None:
    warehouse_app.command("audit")(audit)
    warehouse_app.command("clone-masked")(clone)
