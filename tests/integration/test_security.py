"""Security, each control proven on the real PostgreSQL (README, "Security"):

- TLS only: a plain-TCP login is refused, a wrong CA is one sentence, the server key is
  private, a cluster made before TLS gets it at its next `stack up`;
- the audit trail names the role of a GRANT, a DDL statement and a write;
- PII: nothing `reader` can select holds a full IP address or user agent, and
  `ecom warehouse clone-masked` copies raw/ops with them masked (columns and JSON);
- least privilege: a new dbt model is readable by reader and not writable, loader
  creates nothing outside its session's temp tables, reader creates nothing at all.

One small warehouse is built on the session's stack for the module (one simulated day,
landed as ingestion would, then `dbt build`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import uuid
from datetime import date
from pathlib import Path

import psycopg2
import pytest
from cryptography import x509

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ecom.errors import UserError
from ecom.stack import postgres, tls
from ecom.warehouse.audit import read_entries
from ecom.warehouse.clone import MASK_FUNCTIONS
from ecom_app.seed import DBT, land_events, query, read_jsonl, run_dbt
from tests.conftest import run_ecom

pytestmark = pytest.mark.integration

DENIED = "42501"  # insufficient_privilege
READ_ONLY = "25006"  # read_only_sql_transaction
IPV4_TOKEN = r"((?:[0-9]{1,3}\.){3}[0-9]{1,3})(/[0-9]+)?"
TEXT_TYPES = {"text", "character varying", "character", "json", "jsonb", "inet", "cidr",
              "ARRAY", "USER-DEFINED"}


@pytest.fixture(scope="module")
def warehouse(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The stack with one simulated day landed in raw, two dead letters carrying PII, and
    the warehouse built by dbt."""
    work = tmp_path_factory.mktemp("security")
    events = work / "events.jsonl"
    run_ecom(stack, "simulate", "backfill", "--days", "1", "--events-per-day", "600",
             "--seed", "19190219", "--end-date", date(2025, 2, 19).isoformat(),
             "--users", "300", "--products", "80", "--output", str(events),
             "--manifest", str(work / "manifest.json"), "--no-progress")
    lines = list(read_jsonl(events))
    assert land_events(stack, lines, topic=f"security-{uuid.uuid4().hex[:8]}") == len(lines)
    sample = json.loads(lines[0])
    topic = f"security-dead-{uuid.uuid4().hex[:8]}"
    with connect(stack, "loader") as conn, conn.cursor() as cur:
        for offset, (reason, raw_value) in enumerate([
            ("wrong_type", json.dumps({**sample, "price": "not a number"})),  # a JSON object
            ("invalid_json", "{event_id: 1, " + json.dumps(sample)[1:]),  # an unquoted key
        ]):
            cur.execute(
                "insert into raw.rejected_events (kafka_topic, kafka_partition, kafka_offset, "
                "raw_value, reason_code, reason_message) values (%s, 0, %s, %s, %s, 'test')",
                (topic, offset, raw_value, reason))
    run_dbt(stack, "build")
    return stack


def _pii(settings: Settings) -> tuple[list[str], list[str]]:
    """Every full IP address and user agent raw holds (read as the admin)."""
    ips = [r[0] for r in query(settings, "select distinct ip_address from raw.raw_events "
                                         "where ip_address is not null")]
    agents = [r[0] for r in query(settings, "select distinct user_agent from raw.raw_events "
                                            "where user_agent is not null")]
    assert ips and agents
    return ips, agents


def _attempt(settings: Settings, role: str, statement: str, *, read_write: bool = False
             ) -> str | None:
    """Run one statement as `role` (rolled back); its SQLSTATE if refused, None if allowed.
    `read_write` first turns off the read-only default, to reach the privilege check."""
    conn = connect(settings, role)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cur:
            if read_write:
                cur.execute("set transaction read write")
            cur.execute(statement)
        return None
    except psycopg2.Error as exc:
        return exc.pgcode
    finally:
        conn.rollback()
        conn.close()


# ---- TLS ------------------------------------------------------------------------------

def test_a_plain_tcp_login_is_refused(stack: Settings) -> None:
    plain = stack.replace(pg_sslmode="disable")
    with pytest.raises(UserError, match=r"accepts TLS connections only.*ECOM_PG_SSLMODE"):
        connect(plain, "reader")
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(plain.dsn("admin"), connect_timeout=5).close()
    with connect(stack, "loader") as conn, conn.cursor() as cur:
        cur.execute("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
        encrypted, version = cur.fetchone()
    assert encrypted and version in {"TLSv1.2", "TLSv1.3"}
    assert stack.sslmode == "verify-full"
    assert f"sslrootcert={stack.tls_dir / 'ca.crt'}" in stack.dsn("loader")


def test_a_wrong_ca_is_one_sentence(stack: Settings, tmp_path: Path) -> None:
    other = tls.ensure_ca(tmp_path / "other-ca")
    with pytest.raises(UserError) as caught:
        connect(stack.replace(pg_sslrootcert=str(other.cert_path)), "loader")
    message = str(caught.value)
    assert message.startswith("PostgreSQL's certificate at postgresql://loader:***@")
    assert f"is not signed by the CA in {other.cert_path}" in message
    assert message.count(". ") == 0 and stack.password("loader") not in message
    with pytest.raises(UserError, match=r"The CA file .*missing.crt .* does not exist"):
        connect(stack.replace(pg_sslrootcert=str(tmp_path / "missing.crt")), "loader")


def test_the_server_key_is_private_and_the_certificate_names_the_host(stack: Settings) -> None:
    pgdata = postgres.cluster_dir(stack)
    key = (pgdata / "server.key").stat()
    assert stat.S_IMODE(key.st_mode) == 0o600
    owner = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert key.st_uid == owner
    assert stat.S_IMODE((stack.tls_dir / "ca.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((pgdata / "server.crt").read_bytes())
    names = {str(n.value) for n in
             cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value}
    assert {"127.0.0.1", "::1", "localhost", stack.pg_host} <= names
    hba = (pgdata / "pg_hba.conf").read_text()
    assert [line.split() for line in hba.splitlines() if line and not line.startswith("#")] \
        == [["hostssl", "all", "all", "all", "scram-sha-256"],
            ["hostnossl", "all", "all", "all", "reject"]]


def test_a_cluster_made_before_tls_gets_it_at_its_next_stack_up(stack: Settings) -> None:
    pgdata = postgres.cluster_dir(stack)
    plain = stack.replace(pg_sslmode="disable")
    (pgdata / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    (pgdata / "server.crt").unlink()
    try:
        postgres.reload(stack)
        connect(plain, "reader").close()  # what an older version allowed
    finally:
        postgres.init_cluster(stack)  # what `ecom stack up` runs: rewrite, then reload
    with pytest.raises(UserError, match="accepts TLS connections only"):
        connect(plain, "reader")
    connect(stack, "reader").close()


# ---- audit trail ---------------------------------------------------------------------

def test_the_audit_trail_names_the_role_of_a_grant_a_ddl_and_a_write(stack: Settings) -> None:
    probe = f"audit_probe_{uuid.uuid4().hex[:8]}"
    with connect(stack, "transformer") as conn, conn.cursor() as cur:
        cur.execute(f"create table analytics.{probe} (x int)")
        cur.execute(f"grant select on analytics.{probe} to {stack.user('reader')}")
    run_id = f"audit-{probe}"
    with connect(stack, "loader") as conn, conn.cursor() as cur:
        cur.execute("insert into ops.pipeline_execution_logs (dag_id, run_id, task_id, status) "
                    "values ('audit', %s, 't', 'ok')", (run_id,))
    try:
        log = postgres.log_file(stack)
        ddl = read_entries(log, audit_class="ddl", contains=probe)
        assert [(e.role, e.command, e.object_name) for e in ddl] == [
            ("transformer", "CREATE TABLE", f"analytics.{probe}")]
        grant = read_entries(log, audit_class="role", contains=probe)
        assert [(e.role, e.command) for e in grant] == [("transformer", "GRANT")]
        write = read_entries(log, audit_class="write", contains=run_id)
        assert [(e.role, e.command, e.object_name, e.database) for e in write] == [
            ("loader", "INSERT", "ops.pipeline_execution_logs", stack.pg_database)]
        out = run_ecom(stack, "warehouse", "audit", "--role", "transformer", "--contains",
                       probe, "--limit", "0").stdout
        assert "CREATE TABLE" in out and "GRANT" in out and "transformer" in out
        # the roles' passwords were (re)set through the audited connection: never in clear
        text = log.read_text(errors="replace")
        assert "ALTER ROLE" in text
        for role in ("admin", "loader", "transformer", "reader"):
            assert stack.password(role) not in text
    finally:
        with connect(stack, "transformer") as conn, conn.cursor() as cur:
            cur.execute(f"drop table analytics.{probe}")


# ---- PII -------------------------------------------------------------------------------

def _reader_columns(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(schema, relation, column, type) of every column reader may select, anywhere."""
    conn = connect(settings, "reader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                """select n.nspname, c.relname, a.attname,
                          coalesce(t.typcategory, 'X')
                   from pg_class c
                   join pg_namespace n on n.oid = c.relnamespace
                   join pg_attribute a on a.attrelid = c.oid and a.attnum > 0
                                       and not a.attisdropped
                   join pg_type t on t.oid = a.atttypid
                   where c.relkind in ('r', 'v', 'm', 'p', 'f')
                     and n.nspname not in ('pg_catalog', 'information_schema')
                     and n.nspname not like 'pg_toast%'
                     and has_schema_privilege(n.oid, 'USAGE')
                     and has_column_privilege(c.oid, a.attnum, 'SELECT')
                   order by 1, 2, 3""")
            return list(cur.fetchall())
    finally:
        conn.close()


def test_nothing_reader_can_select_holds_a_full_ip_or_user_agent(warehouse: Settings) -> None:
    ips, agents = _pii(warehouse)
    columns = _reader_columns(warehouse)
    relations = {(schema, rel) for schema, rel, _, _ in columns}
    assert {schema for schema, _ in relations} == {"analytics"}
    assert {("analytics", "processed_events"), ("analytics", "user_sessions")} <= relations
    checked = found = 0
    conn = connect(warehouse, "reader")
    try:
        with conn.cursor() as cur:
            for schema, rel, column, category in columns:
                # strings, JSON, arrays, network and user types: every value as text
                if category not in {"S", "U", "A", "I"}:
                    continue
                target = f'"{schema}"."{rel}"'
                col = f'"{column}"'
                cur.execute(
                    f"select count(*) from {target}, regexp_matches({col}::text, %s, 'g') m "
                    "where m[2] is null and m[1] = any(%s)", (IPV4_TOKEN, ips))
                ip_hits = cur.fetchone()[0]
                cur.execute(f"select distinct {col}::text from {target} where {col} is not null")
                values = [r[0] for r in cur.fetchall()]
                agent_hits = sum(1 for v in values for a in agents if a in v)
                assert (ip_hits, agent_hits) == (0, 0), f"{schema}.{rel}.{column}"
                checked += 1
                found += len(values)
        with conn.cursor() as cur:
            cur.execute("select count(*), count(distinct ip_network) "
                        "from analytics.processed_events where ip_network like '%/24'")
            masked_rows, networks = cur.fetchone()
    finally:
        conn.close()
    assert checked >= 20 and found > 0 and masked_rows > 0 and networks > 1
    # transformer (dbt) reads the full values in staging; reader cannot even look there
    staged = query(warehouse, "select count(*) from analytics_staging."
                   "stg_ecommerce__events where ip_address = any(%s)", (ips,))
    assert staged[0][0] > 0
    assert _attempt(warehouse, "reader",
                    "select ip_address from analytics_staging.stg_ecommerce__events") == DENIED
    assert _attempt(warehouse, "transformer",
                    "select ip_address, user_agent from analytics_staging."
                    "stg_ecommerce__events limit 1") is None
    print(f"\nPII walk: {checked} text columns of {len(relations)} relations reader can "
          f"select, {found:,} distinct values, 0 of {len(ips):,} full IPs and "
          f"{len(agents):,} user agents found")


def test_clone_masks_a_dead_letters_text_whatever_its_quoting(stack: Settings) -> None:
    """Dead letters keep the bytes they arrived as: JSON, broken JSON or a Python repr."""
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:118.0) Gecko/20100101 Firefox/118.0"
    texts = [
        f'{{"user_agent": "{agent}", "ip_address": "165.163.147.12"',  # truncated JSON
        f"{{'user_agent': '{agent}', 'ip_address': '165.163.147.12'}}",  # a Python repr
        f"{{'user_agent': \"{agent}'s\", 'ip_address': '165.163.147.12'}}",
        f'{{"ip_address":"165.163.147.12","user_agent":"{agent[:40]}',  # cut in the value
        f"{{'ip_address': '165.163.147.12', 'user_agent': '{agent[:40]}",
    ]
    conn = connect(stack)
    try:
        with conn.cursor() as cur:
            cur.execute(MASK_FUNCTIONS)
            masked = []
            for text in texts:
                cur.execute("select pg_temp.ecom_mask_text(%s)", (text,))
                masked.append(cur.fetchone()[0])
    finally:
        conn.rollback()
        conn.close()
    for text in masked:
        assert "Mozilla" not in text and "165.163.147.12" not in text, text
        assert "masked" in text and "165.163.147.0" in text, text


def test_clone_masked_copies_raw_and_ops_with_pii_masked(warehouse: Settings) -> None:
    target = f"{warehouse.pg_database}_masked_{uuid.uuid4().hex[:6]}"
    ips, agents = _pii(warehouse)
    # an address that is its network's own (x.y.z.0) tells no more than the network
    ips = [ip for ip in ips if _network(ip) != ip]
    # the mask zeroes digit runs, so an agent without digits (a test's "UA") is its own mask
    agents = [agent for agent in agents if any(ch.isdigit() for ch in agent)]
    out = run_ecom(warehouse, "warehouse", "clone-masked", "--target", target).stdout
    assert "raw.raw_events:" in out and "(masked: user_agent, ip_address, raw_data)" in out
    copy = warehouse.replace(pg_database=target)
    try:
        for table in ("raw.raw_events", "raw.rejected_events", "ops.data_quality_logs",
                      "ops.pipeline_execution_logs"):
            assert query(copy, f"select count(*) from {table}") == \
                query(warehouse, f"select count(*) from {table}"), table
        # every text-like column of every copied table: no full IP, no user agent
        columns = query(copy, """select table_schema, table_name, column_name
                                 from information_schema.columns
                                 where table_schema in ('raw', 'ops')
                                   and data_type in ('text', 'jsonb', 'json')""")
        assert len(columns) > 20
        for schema, table, column in columns:
            hits = query(copy, f'select count(*) from "{schema}"."{table}", '
                               f'regexp_matches("{column}"::text, %s, \'g\') m '
                               'where m[1] = any(%s)', (IPV4_TOKEN, ips))
            assert hits[0][0] == 0, f"{schema}.{table}.{column}"
            values = [r[0] for r in query(
                copy, f'select distinct "{column}"::text from "{schema}"."{table}"')]
            assert not [v for v in values if v and any(a in v for a in agents)], column
        # masked the way the marts mask: the same network, the same device/browser/os
        originals = {r[0]: r[1:] for r in query(
            warehouse, "select event_id::text, ip_address, user_agent from raw.raw_events")}
        masked = query(copy, "select event_id::text, ip_address, user_agent, "
                             "raw_data ->> 'ip_address', raw_data ->> 'user_agent' "
                             "from raw.raw_events")
        assert len(masked) == len(originals)
        for event_id, ip, agent, json_ip, json_agent in masked:
            original_ip, original_agent = originals[event_id]
            assert ip == json_ip == _network(original_ip), event_id
            assert agent == json_agent == _versionless(original_agent), event_id
        dead = query(copy, "select raw_value from raw.rejected_events "
                           "where kafka_topic like 'security-dead-%%' order by kafka_offset")
        assert len(dead) >= 2
        for (value,) in dead[-2:]:
            assert ".0" in value and "ip_address" in value
    finally:
        conn = psycopg2.connect(warehouse.dsn("admin", "postgres"), connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{target}" with (force)')
        conn.close()


def _network(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "masked"
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False).network_address)


def _versionless(agent: str | None) -> str | None:
    return None if agent is None else re.sub(r"[0-9]+", "0", agent)


# ---- least privilege -----------------------------------------------------------------

def test_a_new_dbt_model_is_readable_by_reader_and_not_writable(
        warehouse: Settings, tmp_path: Path) -> None:
    """Default privileges, not the marts' grants: the probe model lives outside marts."""
    project = tmp_path / "dbt_project"
    shutil.copytree(REPO_ROOT / "dbt_project", project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    model = f"security_probe_{uuid.uuid4().hex[:6]}"
    (project / "models" / "probe").mkdir()
    (project / "models" / "probe" / f"{model}.sql").write_text(
        "{{ config(materialized='table') }}\nselect 1 as id\n")
    proc = subprocess.run(
        [str(DBT), "run", "--select", model, "--project-dir", str(project), "--profiles-dir",
         str(project), "--target-path", str(tmp_path / "target"), "--log-path",
         str(tmp_path / "logs")], env=warehouse.subprocess_env(), cwd=project,
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    relation = f"analytics.{model}"
    try:
        assert _attempt(warehouse, "reader", f"select id from {relation}") is None
        for statement in (f"insert into {relation} values (2)",
                          f"update {relation} set id = 3", f"delete from {relation}",
                          f"truncate {relation}"):
            assert _attempt(warehouse, "reader", statement) == READ_ONLY
            assert _attempt(warehouse, "reader", statement, read_write=True) == DENIED
        assert _attempt(warehouse, "loader", f"select id from {relation}") == DENIED
    finally:
        with connect(warehouse, "transformer") as conn, conn.cursor() as cur:
            cur.execute(f"drop table if exists {relation}")


def test_loader_creates_nothing_outside_its_session_and_reader_nothing_at_all(
        warehouse: Settings) -> None:
    outside = [
        "create schema probe_schema",
        "create table public.probe (x int)",
        "create table raw.probe (x int)",
        "create view ops.probe as select 1 as x",
        "create table analytics.probe (x int)",
        "create table analytics_staging.probe (x int)",
        "create function public.probe() returns int language sql as 'select 1'",
        "create sequence ops.probe_seq",
    ]
    for statement in outside:
        assert _attempt(warehouse, "loader", statement) == DENIED, statement
    # the sink stages COPYs in temporary tables: session-private, gone at disconnect
    assert _attempt(warehouse, "loader", "create temp table probe (x int)") is None
    for statement in [*outside, "create temp table probe (x int)",
                      "create function pg_temp.probe() returns int language sql as 'select 1'",
                      "create view analytics.probe_view as select 1 as x"]:
        assert _attempt(warehouse, "reader", statement) == READ_ONLY, statement
        assert _attempt(warehouse, "reader", statement, read_write=True) == DENIED, statement
    flags = query(warehouse, "select rolname, rolcreaterole, rolcreatedb, rolbypassrls, "
                             "rolsuper from pg_roles where rolname = any(%s)",
                  ([warehouse.user(r) for r in ("loader", "transformer", "reader")],))
    assert sorted(flags) == sorted((warehouse.user(r), False, False, False, False)
                                   for r in ("loader", "transformer", "reader"))
