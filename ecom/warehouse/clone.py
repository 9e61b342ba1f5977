"""`ecom warehouse clone-masked`: a development copy of the warehouse with PII masked.

The copy is a new database on the same server (default `<database>_dev`) with the same
landing schema, roles and grants (the project's migrations create them), and every row of
`raw` and `ops` streamed across with its personal data masked *on the way out* of the
source: full addresses and user agents never reach the copy, not even in its WAL.

What is masked (`PII_COLUMNS`, by column name, in every copied table):

- `ip_address`: the address of its network, as the marts show it (`203.0.113.77` ->
  `203.0.113.0`; IPv6: the /48's first address), so the marts a developer builds on the copy
  show the same `ip_network`; anything that is not an address becomes `masked`;
- `user_agent`: every digit run becomes 0 (`Chrome/126.0.6478.61` -> `Chrome/0.0.0.0`): the
  device, browser and OS the marts derive stay, the versions that fingerprint a person go;
- `raw_data` (jsonb): the same two masks applied to its `ip_address` and `user_agent` keys;
- `raw_value` (text, dead letters): as `raw_data` when it parses as a JSON object, else
  every IPv4 address loses its last octet, every IPv6-looking token and every
  `"user_agent": "..."` (or a Python repr's `'user_agent': '...'`) value becomes `masked`;
- `observed_value` (jsonb, quality results): the sample of failing values a gate keeps
  (`partial_unexpected_list`, which for the address checks holds addresses) is dropped.

`analytics` is not copied: build it on the copy with dbt (`ECOM_PG_DATABASE=<copy>`), so
the copy never holds more than the masked landing data derives.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import sql

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError
from ecom.warehouse.migrate import migrate

COPIED_SCHEMAS = ("raw", "ops")
#: tables the target's own migration run fills
SKIPPED_TABLES = {("ops", "schema_migrations")}
#: column name -> the masking function applied to it
PII_COLUMNS = {
    "ip_address": "pg_temp.ecom_mask_ip",
    "user_agent": "pg_temp.ecom_mask_ua",
    "raw_data": "pg_temp.ecom_mask_json",
    "raw_value": "pg_temp.ecom_mask_text",
    "observed_value": "pg_temp.ecom_mask_observed",
}

_IPV4 = (r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
         r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$")
_IPV6 = r"^[0-9a-fA-F:]*:[0-9a-fA-F:]*$"
#: in free text: an IPv4 address (its first three octets captured), and an IPv6 address
#: (five or more groups, or a `::`; a time of day like 10:05:00 is neither)
_IPV4_IN_TEXT = r"\m([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.[0-9]{1,3}\M"
_IPV6_IN_TEXT = (r"([0-9a-fA-F]{1,4}:){4,7}[0-9a-fA-F]{1,4}"
                 r"|[0-9a-fA-F:]*::[0-9a-fA-F:]*[0-9a-fA-F]")

#: session-private (pg_temp) functions: nothing is created in the source database
MASK_FUNCTIONS = f"""
create function pg_temp.ecom_mask_ip(value text) returns text language plpgsql immutable as $$
begin
    if value is null then
        return null;
    elsif value ~ '{_IPV4}' then
        return host(set_masklen(value::inet, 24)::cidr);
    elsif value ~ '{_IPV6}' then
        begin
            return host(set_masklen(value::inet, 48)::cidr);
        exception when others then
            return 'masked';
        end;
    end if;
    return 'masked';
end $$;

create function pg_temp.ecom_mask_ua(value text) returns text language sql immutable as $$
    select regexp_replace(value, '[0-9]+', '0', 'g')
$$;

create function pg_temp.ecom_mask_json(doc jsonb) returns jsonb language sql immutable as $$
    select case when jsonb_typeof(doc) = 'object' then
        doc || jsonb_strip_nulls(jsonb_build_object(
            'ip_address', case when jsonb_typeof(doc -> 'ip_address') = 'string'
                then to_jsonb(pg_temp.ecom_mask_ip(doc ->> 'ip_address'))
                when doc ? 'ip_address' and jsonb_typeof(doc -> 'ip_address') <> 'null'
                then to_jsonb('masked'::text) end,
            'user_agent', case when jsonb_typeof(doc -> 'user_agent') = 'string'
                then to_jsonb(pg_temp.ecom_mask_ua(doc ->> 'user_agent'))
                when doc ? 'user_agent' and jsonb_typeof(doc -> 'user_agent') <> 'null'
                then to_jsonb('masked'::text) end))
    else doc end
$$;

create function pg_temp.ecom_mask_observed(doc jsonb) returns jsonb language sql immutable as $$
    select case when jsonb_typeof(doc) = 'object' and doc ? 'partial_unexpected_list'
        then jsonb_set(doc, '{{partial_unexpected_list}}', '"masked"') else doc end
$$;

create function pg_temp.ecom_mask_text(value text) returns text language plpgsql immutable as $$
declare
    doc jsonb;
begin
    if value is null then
        return null;
    end if;
    begin
        doc := value::jsonb;
    exception when others then
        doc := null;
    end;
    if jsonb_typeof(doc) = 'object' then
        return pg_temp.ecom_mask_json(doc)::text;
    end if;
    -- JSON-like text ("user_agent": "...") and Python reprs ('user_agent': '...'), also
    -- when the record was cut short inside the value (no closing quote)
    value := regexp_replace(value, '(["'']?user_agent["'']?\\s*:\\s*)"[^"]*"?', '\\1"masked"',
                            'g');
    value := regexp_replace(value, '(["'']?user_agent["'']?\\s*:\\s*)''[^'']*''?',
                            '\\1''masked''', 'g');
    value := regexp_replace(value, '{_IPV4_IN_TEXT}', '\\1.0', 'g');
    return regexp_replace(value, '{_IPV6_IN_TEXT}', 'masked', 'g');
end $$;
"""


@dataclass
class CloneReport:
    database: str
    rows: dict[str, int] = field(default_factory=dict)
    masked_columns: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _tables(cur: object) -> dict[tuple[str, str], list[str]]:
    cur.execute(  # type: ignore[attr-defined]
        """select c.table_schema, c.table_name, c.column_name
           from information_schema.columns c
           join information_schema.tables t using (table_schema, table_name)
           where t.table_type = 'BASE TABLE' and c.table_schema = any(%s)
             and c.is_generated = 'NEVER'
           order by c.table_schema, c.table_name, c.ordinal_position""",
        (list(COPIED_SCHEMAS),))
    out: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in cur.fetchall():  # type: ignore[attr-defined]
        out.setdefault((schema, table), []).append(column)
    return out


def _create_database(settings: Settings, target: str, replace: bool) -> None:
    conn = psycopg2.connect(settings.dsn("admin", "postgres"), connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (target,))
            if cur.fetchone():
                if not replace:
                    raise UserError(
                        f"Database {target} already exists: pass --replace to drop and "
                        "re-create it, or --target another name.")
                cur.execute(sql.SQL("drop database {} with (force)").format(
                    sql.Identifier(target)))
            cur.execute(sql.SQL("create database {}").format(sql.Identifier(target)))
    finally:
        conn.close()


def _stream(source: object, target: object, out_sql: str, in_sql: str) -> None:
    """COPY from one connection into another through a pipe (no temp file)."""
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink, source.cursor() as cur:  # type: ignore[attr-defined]
                cur.copy_expert(out_sql, sink)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb") as pipe, target.cursor() as cur:  # type: ignore[attr-defined]
            cur.copy_expert(in_sql, pipe)
    finally:
        thread.join()
    if errors:
        raise errors[0]


def clone_masked(settings: Settings, target: str | None = None, *, replace: bool = False,
                 log: Callable[[str], None] = print) -> CloneReport:
    """Create `target` (default `<database>_dev`) as a PII-masked copy of raw and ops."""
    target = target or f"{settings.pg_database}_dev"
    if target == settings.pg_database:
        raise UserError(f"The masked copy cannot replace the warehouse itself ({target}).")
    _create_database(settings, target, replace)
    target_settings = settings.replace(pg_database=target)
    migrate(target_settings)
    report = CloneReport(target)
    source = connect(settings, "admin")
    dest = connect(target_settings, "admin")
    try:
        with source.cursor() as cur:
            # one snapshot for every table: the copy is consistent across tables
            cur.execute("set transaction isolation level repeatable read")
            cur.execute(MASK_FUNCTIONS)
            tables = _tables(cur)
        with dest.cursor() as cur:
            present = _tables(cur)
        for (schema, table), columns in tables.items():
            name = f"{schema}.{table}"
            if (schema, table) in SKIPPED_TABLES:
                continue
            if (schema, table) not in present:
                report.skipped.append(name)
                continue
            shared = [c for c in columns if c in present[(schema, table)]]
            masked = [c for c in shared if c in PII_COLUMNS]
            select = sql.SQL(", ").join(
                sql.SQL("{}({})").format(sql.SQL(PII_COLUMNS[c]), sql.Identifier(c))
                if c in PII_COLUMNS else sql.Identifier(c) for c in shared)
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in shared)
            relation = sql.Identifier(schema, table)
            out_sql = sql.SQL("copy (select {} from {}) to stdout").format(select, relation)
            in_sql = sql.SQL("copy {} ({}) from stdin").format(relation, cols)
            with dest.cursor() as cur:
                cur.execute(sql.SQL("truncate {}").format(relation))
            _stream(source, dest, out_sql.as_string(source), in_sql.as_string(dest))
            with dest.cursor() as cur:
                cur.execute(sql.SQL("select count(*) from {}").format(relation))
                report.rows[name] = cur.fetchone()[0]
                _reset_identities(cur, schema, table)
            if masked:
                report.masked_columns[name] = masked
            log(f"  {name}: {report.rows[name]:,} rows"
                + (f" (masked: {', '.join(masked)})" if masked else ""))
        dest.commit()
        source.rollback()
    finally:
        source.close()
        dest.close()
    return report


def _reset_identities(cur: object, schema: str, table: str) -> None:
    """Identity columns continue after the copied values."""
    cur.execute(  # type: ignore[attr-defined]
        "select column_name from information_schema.columns where table_schema = %s "
        "and table_name = %s and is_identity = 'YES'", (schema, table))
    for (column,) in cur.fetchall():  # type: ignore[attr-defined]
        cur.execute(  # type: ignore[attr-defined]
            sql.SQL("select setval(pg_get_serial_sequence(%s, %s), "
                    "coalesce(max({}), 0) + 1, false) from {}").format(
                sql.Identifier(column), sql.Identifier(schema, table)),
            (f"{schema}.{table}", column))
