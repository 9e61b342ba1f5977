"""Reading the embedded cluster's audit trail (pgaudit lines in the server log).

pgaudit writes one line per audited statement (classes DDL, ROLE and WRITE, see
`ecom.stack.postgres`), and `log_line_prefix` puts the session's role, database and
application before it:

    2026-03-01 02:00:01.123 UTC [4242] transformer@ecommerce/dbt LOG:  AUDIT: SESSION,7,1,
        DDL,CREATE TABLE,TABLE,analytics.daily_aggregations,"create table ...",<not logged>

The CSV after `AUDIT:` is pgaudit's: audit type, statement id, sub-statement id, class,
command, object type, object name, statement, parameter. A statement spanning lines
continues on lines that start with a tab. Passwords never appear: pgaudit redacts them in
role statements, and the project sets role passwords as SCRAM verifiers anyway.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_RECORD_START = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_AUDIT = re.compile(
    r"^(?P<time>\S+ \S+ \S+) \[(?P<pid>\d+)\] (?P<role>[^@\s]*)@(?P<database>[^/\s]*)/"
    r"(?P<application>.*?) LOG:  AUDIT: (?P<csv>.*)$", re.DOTALL)


@dataclass(frozen=True)
class AuditEntry:
    time: str
    pid: int
    role: str
    database: str
    application: str
    audit_class: str  # DDL, ROLE, WRITE
    command: str  # CREATE TABLE, GRANT, INSERT, COPY ...
    object_type: str
    object_name: str
    statement: str  # "<previously logged>" for a statement's later sub-statements


def _records(lines: Iterable[str]) -> Iterator[str]:
    """Log records: a line with a timestamp plus the tab-indented lines continuing it."""
    current: list[str] = []
    for line in lines:
        line = line.rstrip("\n")
        if _RECORD_START.match(line):
            if current:
                yield "\n".join(current)
            current = [line]
        elif current and line.startswith("\t"):
            current.append(line[1:])
        elif current:
            yield "\n".join(current)
            current = []
    if current:
        yield "\n".join(current)


def parse(lines: Iterable[str]) -> Iterator[AuditEntry]:
    """The audit entries among server-log lines (other log lines are skipped)."""
    for record in _records(lines):
        match = _AUDIT.match(record)
        if not match:
            continue
        # a statement can exceed csv's default field limit (dbt's models run to 100s of kB)
        csv.field_size_limit(max(csv.field_size_limit(), len(match["csv"]) + 1))
        fields = next(csv.reader(io.StringIO(match["csv"])), [])
        if len(fields) < 8:
            continue
        yield AuditEntry(
            time=match["time"], pid=int(match["pid"]), role=match["role"],
            database=match["database"], application=match["application"],
            audit_class=fields[3], command=fields[4], object_type=fields[5],
            object_name=fields[6], statement=fields[7],
        )


def read_entries(log_file: Path, *, role: str | None = None, audit_class: str | None = None,
                 contains: str | None = None) -> list[AuditEntry]:
    """Audit entries of a server log, filtered by role, class (DDL, ROLE, WRITE) and a
    substring of the object name or statement."""
    with log_file.open(errors="replace") as handle:
        entries = list(parse(handle))
    if role:
        entries = [e for e in entries if e.role == role]
    if audit_class:
        entries = [e for e in entries if e.audit_class.upper() == audit_class.upper()]
    if contains:
        needle = contains.lower()
        entries = [e for e in entries
                   if needle in e.object_name.lower() or needle in e.statement.lower()]
    return entries
