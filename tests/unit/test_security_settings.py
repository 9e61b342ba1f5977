"""TLS settings every PostgreSQL client gets, the stack's certificates, and the audit-log
parser (pure logic; the live checks are in tests/integration/test_security.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml
from cryptography import x509

from ecom.config import REPO_ROOT, Settings
from ecom.stack import tls
from ecom.warehouse.audit import parse
from expectations.project import gx_dsn


def test_auto_is_verify_full_with_the_stack_ca_when_embedded(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path)
    assert embedded.sslmode == "verify-full"
    assert embedded.sslrootcert == str(tmp_path / "tls" / "ca.crt")
    assert f"sslmode=verify-full&sslrootcert={tmp_path}/tls/ca.crt" in embedded.dsn("loader")
    env = embedded.as_env(secrets=False)
    assert (env["ECOM_PG_SSLMODE"], env["ECOM_PG_SSLROOTCERT"]) == (
        "verify-full", str(tmp_path / "tls" / "ca.crt"))
    # GE's SQLAlchemy URL is the same libpq URL
    assert "sslmode=verify-full&sslrootcert=" in gx_dsn(embedded, None)


def test_auto_is_prefer_for_an_external_server_and_explicit_settings_win(
        tmp_path: Path) -> None:
    external = Settings(data_dir=tmp_path, pg_mode="external")
    assert (external.sslmode, external.sslrootcert) == ("prefer", "")
    assert "sslrootcert" not in external.dsn()
    strict = external.replace(pg_sslmode="verify-full", pg_sslrootcert="/etc/rds-ca.pem")
    assert "sslmode=verify-full&sslrootcert=/etc/rds-ca.pem" in strict.dsn()
    # what a child process rebuilds from the environment is the same
    again = Settings.from_env(strict.as_env())
    assert (again.sslmode, again.sslrootcert) == ("verify-full", "/etc/rds-ca.pem")


def test_the_dbt_profile_reads_sslmode_and_the_ca() -> None:
    profile = yaml.safe_load((REPO_ROOT / "dbt_project" / "profiles.yml").read_text())
    output = profile["ecom"]["outputs"]["dev"]
    assert "ECOM_PG_SSLMODE" in output["sslmode"]
    assert "ECOM_PG_SSLROOTCERT" in output["sslrootcert"]


def test_the_server_certificate_follows_the_host_and_the_ca(tmp_path: Path) -> None:
    ca = tls.ensure_ca(tmp_path / "tls")
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600
    assert tls.ensure_ca(tmp_path / "tls") == ca  # kept
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    assert tls.ensure_server_certificate(ca, cert, key, "127.0.0.1")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not tls.ensure_server_certificate(ca, cert, key, "127.0.0.1")  # still good
    assert tls.ensure_server_certificate(ca, cert, key, "db.internal")  # new name
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in names} == {"127.0.0.1", "::1", "localhost", "db.internal"}
    other = tls.ensure_ca(tmp_path / "other")
    assert tls.ensure_server_certificate(other, cert, key, "db.internal")  # another CA


LOG = '''2026-03-01 02:00:07.120 UTC [4242] transformer@ecommerce/dbt LOG:  AUDIT: SESSION,7,1,\
DDL,CREATE TABLE,TABLE,analytics.daily_aggregations,"create table analytics.daily_aggregations
\tas (select 'a, b' as ""x"")",<not logged>
2026-03-01 02:00:07.200 UTC [4242] transformer@ecommerce/dbt LOG:  duration: 1 ms
2026-03-01 02:00:08.001 UTC [4243] loader@ecommerce/ecom LOG:  AUDIT: SESSION,3,1,WRITE,INSERT,\
TABLE,ops.pipeline_execution_logs,"insert into ops.pipeline_execution_logs values (1)",<not logged>
2026-03-01 02:00:09.001 UTC [4244] ecom_admin@ecommerce/ecom LOG:  AUDIT: SESSION,9,1,ROLE,\
ALTER ROLE,,,"alter role ""loader"" with login password <REDACTED>",<not logged>
'''


def test_audit_lines_are_parsed_with_role_class_object_and_statement() -> None:
    entries = list(parse(LOG.splitlines(keepends=True)))
    assert [(e.role, e.database, e.application, e.audit_class, e.command, e.object_name)
            for e in entries] == [
        ("transformer", "ecommerce", "dbt", "DDL", "CREATE TABLE",
         "analytics.daily_aggregations"),
        ("loader", "ecommerce", "ecom", "WRITE", "INSERT", "ops.pipeline_execution_logs"),
        ("ecom_admin", "ecommerce", "ecom", "ROLE", "ALTER ROLE", ""),
    ]
    assert entries[0].statement == ("create table analytics.daily_aggregations\n"
                                    "as (select 'a, b' as \"x\")")
    assert entries[2].statement.endswith("password <REDACTED>")


def test_an_audited_statement_longer_than_csvs_field_limit_is_parsed_whole() -> None:
    body = "x" * 300_000  # dbt's compiled models can run past csv's 128 kB default
    line = ("2026-03-01 02:00:07.120 UTC [4242] transformer@ecommerce/dbt LOG:  AUDIT: "
            f'SESSION,7,1,DDL,CREATE VIEW,VIEW,analytics.v,"create view analytics.v as {body}"'
            ",<not logged>\n")
    [entry] = parse([line])
    assert entry.object_name == "analytics.v" and entry.statement.endswith(body)
