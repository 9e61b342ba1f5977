"""Raw days past their retention, to Parquet and out of the warehouse, and back on demand.

One day of one table at a time, in an order that survives a crash at any point:

1. parts of the day left `writing` by an interrupted run are removed (file and ledger row:
   their rows never left raw);
2. the day is held if any of its rows is still within Kafka's reach (`kafka_reach`) or,
   for events, not yet in the sessionised events dbt builds (the marts must have it);
3. a ledger row `writing` is committed, the Parquet part is written, read back and its
   row count and checksum over the ids compared with the database's;
4. one transaction deletes exactly the verified ids from raw and marks the part
   `archived`. A crash before it commits leaves every row in raw; after, the part is done.

Rows of the day already in an archived part (a restored day) are not written twice: the
day's delete takes them too, verified against their part. Parts are laid out
`<table>/<event_date|received_date>=YYYY-MM-DD/part-<checksum>.parquet` (Hive style: Spark,
DuckDB or Athena read the archive as a partitioned dataset) on any fsspec filesystem.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ecom.config import Settings
from ecom.db import connect
from ecom.errors import UserError
from operations.kafka_reach import IN_REACH, Reach, broker_reach, load_reach

Progress = Callable[[str], None]
FETCH_ROWS = 20_000
#: what dbt builds from raw events: a day leaves raw only once every row of it is there
SESSIONIZED = "analytics_intermediate.int_events_sessionized"


@dataclass(frozen=True)
class ArchivedTable:
    name: str
    key: str  # the primary key: the checksum is over it
    time_column: str  # the day is this column's UTC date (an indexed column)
    partition: str  # the archive's partition folder name

    @property
    def relation(self) -> str:
        return f"raw.{self.name}"


TABLES = {
    "raw_events": ArchivedTable("raw_events", "event_id", "event_timestamp", "event_date"),
    "rejected_events": ArchivedTable("rejected_events", "rejected_id", "received_at",
                                     "received_date"),
}


def _quiet(_line: str) -> None:
    pass


# ---- the archive's filesystem -------------------------------------------------------------

def archive_url(settings: Settings) -> str:
    return settings.archive_url or str(settings.data_dir / "archive")


def filesystem(settings: Settings) -> tuple[fsspec.AbstractFileSystem, str]:
    url = archive_url(settings)
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise UserError(
            f"ECOM_ARCHIVE_URL={url} needs a filesystem package that is not installed "
            f"({exc}); for s3:// install the extra: `.venv/bin/pip install -e '.[s3]'`."
        ) from exc
    except ValueError as exc:
        raise UserError(f"ECOM_ARCHIVE_URL={url} names no filesystem fsspec knows ({exc}): "
                        "use a path, or a URL such as s3://bucket/prefix.") from exc
    return fs, root.rstrip("/")


def day_dir(root: str, table: ArchivedTable, day: date) -> str:
    return f"{root}/{table.name}/{table.partition}={day.isoformat()}"


def id_checksum(ids: Iterable[object]) -> str:
    """sha256 over the sorted ids as text: the same set gives the same sum, in any order."""
    digest = hashlib.sha256()
    for value in sorted(str(i) for i in ids):
        digest.update(value.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def part_name(checksum: str) -> str:
    return f"part-{checksum[:16]}.parquet"


def _write_error(settings: Settings, what: str, exc: OSError) -> UserError:
    return UserError(
        f"Cannot {what} the archive at {archive_url(settings)} ({exc.strerror or exc}): "
        "nothing was deleted from raw. Make the archive writable (or free space) and run "
        "the maintenance again: it resumes where it stopped.")


# ---- columns and types ---------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    precision: int | None
    scale: int | None

    @property
    def select(self) -> str:
        return f"{self.name}::text" if self.data_type in ("uuid", "jsonb", "json") \
            else self.name

    @property
    def arrow(self) -> pa.DataType:
        t = self.data_type
        if t == "integer":
            return pa.int32()
        if t == "bigint":
            return pa.int64()
        if t == "smallint":
            return pa.int16()
        if t == "boolean":
            return pa.bool_()
        if t == "numeric" and self.precision:
            return pa.decimal128(self.precision, self.scale or 0)
        if t in ("double precision", "real"):
            return pa.float64()
        if t == "timestamp with time zone":
            return pa.timestamp("us", tz="UTC")
        if t == "date":
            return pa.date32()
        return pa.string()  # text, uuid, json(b), and anything else as its text form


def table_columns(cur: Any, table: ArchivedTable) -> list[Column]:
    cur.execute("select column_name, data_type, numeric_precision, numeric_scale "
                "from information_schema.columns where table_schema = 'raw' "
                "and table_name = %s order by ordinal_position", (table.name,))
    return [Column(*row) for row in cur.fetchall()]


def _schema(columns: list[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow) for c in columns])


# ---- what a run does with one day ------------------------------------------------------------

@dataclass
class DayOutcome:
    table: str
    day: date
    status: str  # archived | held | dry_run
    rows: int = 0  # rows that left raw (or would)
    written: int = 0  # rows written to a new part (the rest were in a part already)
    bytes: int = 0  # the new part's size (dry run: the rows' size in PostgreSQL)
    part: str | None = None
    detail: str = ""


@dataclass
class ArchiveRun:
    settings: Settings
    reach: Reach
    dry_run: bool = False
    progress: Progress = _quiet
    fs: Any = None
    root: str = ""
    outcomes: list[DayOutcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fs, self.root = filesystem(self.settings)


def due_days(settings: Settings, table: ArchivedTable, as_of: date) -> list[tuple[date, int]]:
    """(day, rows) of the table's days older than the retention, oldest first."""
    cutoff = as_of - timedelta(days=settings.archive_after_days)
    conn = connect(settings, "admin")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"select ({table.time_column} at time zone 'UTC')::date as day, count(*) "
                f"from {table.relation} where {table.time_column} < %s "
                "group by 1 order by 1", (_midnight(cutoff),))
            return [(row[0], int(row[1])) for row in cur.fetchall()]
    finally:
        conn.close()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    return _midnight(day), _midnight(day + timedelta(days=1))


def archive_day(run: ArchiveRun, table: ArchivedTable, day: date) -> DayOutcome:
    """Archive one day of one table (idempotent; see the module docstring)."""
    settings = run.settings
    conn = connect(settings, "admin")
    try:
        _drop_unfinished_parts(run, conn, table, day)
        hold = _hold_reason(run, conn, table, day)
        if hold:
            return DayOutcome(table.name, day, "held", detail=hold)
        archived = _archived_ids(run, conn, table, day)
        if run.dry_run:
            return _dry_run(conn, table, day, archived)
        with conn, conn.cursor() as cur:
            columns = table_columns(cur, table)
        new_ids, day_ids, part, size = _write_part(run, conn, table, day, columns, archived)
        if not day_ids:
            return DayOutcome(table.name, day, "archived", detail="no rows left")
        _delete_archived(run, conn, table, day, day_ids, part, size)
        return DayOutcome(table.name, day, "archived", rows=len(day_ids),
                          written=len(new_ids), bytes=size, part=part,
                          detail="" if new_ids else "its rows were archived before")
    finally:
        conn.close()


def _drop_unfinished_parts(run: ArchiveRun, conn: Any, table: ArchivedTable,
                           day: date) -> None:
    """Remove the parts an interrupted run left `writing` (at the URL it wrote them to:
    the archive may have moved since); their rows never left raw."""
    with conn, conn.cursor() as cur:
        cur.execute("select part, url from ops.archive_parts where table_name = %s "
                    "and day = %s and state = 'writing'", (table.name, day))
        stale = cur.fetchall()
    if run.dry_run:
        return
    for part, url in stale:
        try:
            fs, path = fsspec.core.url_to_fs(url)
            if fs.exists(path):
                fs.rm(path)
        except OSError as exc:
            raise _write_error(run.settings, "clean up an interrupted part in", exc) from exc
        with conn, conn.cursor() as cur:
            cur.execute("delete from ops.archive_parts where table_name = %s and day = %s "
                        "and part = %s and state = 'writing'", (table.name, day, part))
        run.progress(f"  removed {part} of {table.name} {day}, left by an interrupted run")


def _hold_reason(run: ArchiveRun, conn: Any, table: ArchivedTable, day: date) -> str:
    start, end = _day_bounds(day)
    rows = f"{table.relation} r where r.{table.time_column} >= %s and r.{table.time_column} < %s"
    with conn, conn.cursor() as cur:
        cur.execute(f"select distinct kafka_topic from {table.relation} "
                    f"where {table.time_column} >= %s and {table.time_column} < %s",
                    (start, end))
        topics = {r[0] for r in cur.fetchall()}
        load_reach(cur, run.reach, topics)
        cur.execute(f"select count(*) from {rows} and {IN_REACH}", (start, end))
        reachable = cur.fetchone()[0]
        if reachable:
            where = ("Kafka did not answer, so rows of each topic's current epoch count as "
                     "readable" if not run.reach.known else
                     "the broker still serves their records")
            return (f"{reachable:,} row(s) could be read from Kafka again ({where}); the day "
                    "is archived once retention or a new topic epoch puts them out of reach")
        if table.name != "raw_events":
            return ""
        cur.execute("select relpersistence from pg_class where oid = to_regclass(%s)",
                    (SESSIONIZED,))
        found = cur.fetchone()
        if found is None:
            return f"dbt has not built {SESSIONIZED} yet: run the pipeline first"
        if found[0] == "u":
            return (f"{SESSIONIZED} is unlogged (built before it became logged): a crash "
                    "would empty it, losing the history of archived days; rebuild it logged "
                    "with `dbt build --full-refresh` first")
        cur.execute(f"select count(*) from {rows} and not exists (select from {SESSIONIZED} i "
                    "where i.event_date = %s and i.event_id = r.event_id)", (start, end, day))
        missing = cur.fetchone()[0]
        if missing:
            return (f"{missing:,} event(s) of the day are not in {SESSIONIZED} yet: the marts "
                    "must have them before raw lets them go (run the pipeline)")
    return ""


def _archived_ids(run: ArchiveRun, conn: Any, table: ArchivedTable, day: date) -> set[str]:
    """The ids in the day's archived parts, each part checked against its ledger row."""
    with conn, conn.cursor() as cur:
        cur.execute("select part, rows, id_checksum from ops.archive_parts where table_name = %s "
                    "and day = %s and state = 'archived'", (table.name, day))
        parts = cur.fetchall()
    ids: set[str] = set()
    for part, rows, checksum in parts:
        path = f"{day_dir(run.root, table, day)}/{part}"
        try:
            with run.fs.open(path, "rb") as fh:
                read = [str(v) for v in pq.read_table(fh, columns=[table.key])
                        .column(0).to_pylist()]
        except (OSError, pa.ArrowException) as exc:
            raise UserError(
                f"Archive part {path} is missing or unreadable ({exc}): it holds {rows:,} rows "
                f"of {table.name} {day} that are nowhere else. Nothing more of that day is "
                "deleted; restore the file (e.g. from the object store's versions).") from exc
        if len(read) != rows or id_checksum(read) != checksum:
            raise UserError(
                f"Archive part {path} does not match its ledger ({len(read):,} rows, expected "
                f"{rows:,}, or a different checksum): nothing more of {table.name} {day} is "
                "deleted until it is checked.")
        ids.update(read)
    return ids


def _dry_run(conn: Any, table: ArchivedTable, day: date, archived: set[str]) -> DayOutcome:
    start, end = _day_bounds(day)
    with conn, conn.cursor() as cur:
        cur.execute(f"select count(*), coalesce(sum(pg_column_size(r.*)), 0) "
                    f"from {table.relation} r where {table.time_column} >= %s "
                    f"and {table.time_column} < %s", (start, end))
        rows, size = cur.fetchone()
    note = f"{len(archived):,} id(s) already in archived parts" if archived else ""
    return DayOutcome(table.name, day, "dry_run", rows=int(rows), bytes=int(size), detail=note)


def _rows_to_batch(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    arrays = [pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _write_part(run: ArchiveRun, conn: Any, table: ArchivedTable, day: date,
                columns: list[Column], archived: set[str],
                ) -> tuple[list[str], list[str], str | None, int]:
    """Write the day's rows not yet archived to a new part; returns (new ids, every id of
    the day that is now in a verified part, part name, bytes)."""
    start, end = _day_bounds(day)
    schema = _schema(columns)
    key_index = [c.name for c in columns].index(table.key)
    with conn, conn.cursor() as cur:
        cur.execute(f"select {table.key}::text from {table.relation} where "
                    f"{table.time_column} >= %s and {table.time_column} < %s", (start, end))
        day_ids = [r[0] for r in cur.fetchall()]
    new_ids = [i for i in day_ids if i not in archived]
    if not new_ids:
        return [], day_ids, None, 0
    checksum = id_checksum(new_ids)
    part = part_name(checksum)
    folder = day_dir(run.root, table, day)
    path = f"{folder}/{part}"
    with conn, conn.cursor() as cur:
        cur.execute("insert into ops.archive_parts (table_name, day, part, state, url, rows, "
                    "id_checksum) values (%s, %s, %s, 'writing', %s, %s, %s)",
                    (table.name, day, part, run.fs.unstrip_protocol(path), len(new_ids),
                     checksum))
    run.progress(f"  writing {len(new_ids):,} rows of {table.name} {day} to {part} ...")
    wanted = set(new_ids)
    select = ", ".join(c.select for c in columns)
    try:
        run.fs.makedirs(folder, exist_ok=True)
        with run.fs.open(path, "wb") as fh, pq.ParquetWriter(
                fh, schema, compression="zstd") as writer, conn, conn.cursor(
                name=f"archive_{table.name}") as cur:
            cur.itersize = FETCH_ROWS
            cur.execute(f"select {select} from {table.relation} where {table.time_column} "
                        f">= %s and {table.time_column} < %s order by {table.key}", (start, end))
            while rows := cur.fetchmany(FETCH_ROWS):
                rows = [r for r in rows if str(r[key_index]) in wanted]
                if rows:
                    writer.write_batch(_rows_to_batch(rows, schema))
    except OSError as exc:
        raise _write_error(run.settings, "write to", exc) from exc
    try:
        size = int(run.fs.size(path))
        with run.fs.open(path, "rb") as fh:
            read = [str(v) for v in pq.read_table(fh, columns=[table.key]).column(0).to_pylist()]
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"Reading back the new archive part {path} failed ({exc}): nothing was "
                        "deleted from raw; the next run writes it again.") from exc
    if len(read) != len(new_ids) or id_checksum(read) != checksum:
        raise UserError(
            f"The archive part {path} read back {len(read):,} rows (expected {len(new_ids):,}) "
            "or a different checksum over the ids: nothing was deleted from raw; the next run "
            "writes it again.")
    return new_ids, day_ids, part, size


def _delete_archived(run: ArchiveRun, conn: Any, table: ArchivedTable, day: date,
                     ids: list[str], part: str | None, size: int) -> None:
    """One transaction: delete exactly the verified ids of the day, mark the part archived."""
    start, end = _day_bounds(day)
    key_type = "uuid" if table.key == "event_id" else "bigint"
    with conn, conn.cursor() as cur:
        cur.execute(f"create temp table archived_ids (id {key_type}) on commit drop")
        cur.copy_expert("copy archived_ids from stdin", io.StringIO("\n".join(ids) + "\n"))
        cur.execute(f"delete from {table.relation} r using archived_ids a "
                    f"where r.{table.key} = a.id and r.{table.time_column} >= %s "
                    f"and r.{table.time_column} < %s", (start, end))
        if cur.rowcount != len(ids):
            raise UserError(
                f"Deleting {len(ids):,} archived rows of {table.name} {day} matched "
                f"{cur.rowcount:,}: another process changed the day meanwhile; nothing was "
                "deleted, the next run tries again.")
        if part is not None:
            cur.execute("update ops.archive_parts set state = 'archived', bytes = %s, "
                        "archived_at = now() where table_name = %s and day = %s and part = %s",
                        (size, table.name, day, part))
        if table.name == "raw_events":
            cur.execute("insert into ops.pruned_days (layer, day) values ('raw', %s) "
                        "on conflict do nothing", (day,))


def archive(settings: Settings, as_of: date, *, dry_run: bool = False,
            tables: Iterable[str] = tuple(TABLES), progress: Progress = _quiet,
            on_day: Callable[[DayOutcome], None] | None = None) -> list[DayOutcome]:
    """Archive every due day of `tables` (days older than ECOM_ARCHIVE_AFTER_DAYS before
    `as_of`); returns one outcome per day."""
    chosen = [TABLES[t] for t in tables]
    due = {t.name: due_days(settings, t, as_of) for t in chosen}
    if not any(due.values()):
        return []
    topics: set[str] = set()
    conn = connect(settings, "admin")
    try:
        with conn, conn.cursor() as cur:
            for t in chosen:
                cur.execute(f"select distinct kafka_topic from {t.relation} "
                            f"where {t.time_column} < %s",
                            (_midnight(as_of - timedelta(days=settings.archive_after_days)),))
                topics |= {r[0] for r in cur.fetchall()}
    finally:
        conn.close()
    run = ArchiveRun(settings, broker_reach(settings, topics), dry_run, progress)
    outcomes = []
    with _one_archiver(settings):
        for table in chosen:
            for day, rows in due[table.name]:
                progress(f"{table.relation} {day}: {rows:,} rows ...")
                outcome = archive_day(run, table, day)
                outcomes.append(outcome)
                if on_day:
                    on_day(outcome)
    return outcomes


@contextmanager
def _one_archiver(settings: Settings) -> Iterator[None]:
    """A session lock: two runs (the CLI and the DAG) never archive at the same time."""
    conn = connect(settings, "admin", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_try_advisory_lock(hashtext('ecom-archive'))")
            if not cur.fetchone()[0]:
                raise UserError("Another maintenance run is archiving right now: nothing was "
                                "done; run it again once that one has finished.")
        yield
    finally:
        conn.close()  # ends the session: releases the lock


# ---- listing and restoring -------------------------------------------------------------------

def archived_days(settings: Settings) -> list[dict[str, Any]]:
    """The archive's ledger by table and day: parts, rows, bytes, newest archiving."""
    conn = connect(settings, "admin")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select table_name, day, count(*), sum(rows), sum(bytes), "
                        "max(archived_at) from ops.archive_parts where state = 'archived' "
                        "group by 1, 2 order by 2, 1")
            names = ("table", "day", "parts", "rows", "bytes", "archived_at")
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()


@dataclass(frozen=True)
class RestoredTable:
    table: str
    day: date
    parts: int
    archived_rows: int
    loaded: int  # new rows in raw
    present: int  # already in raw (restored before, or re-landed): left as they are


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, bool):
        text = "t" if value else "f"
    elif isinstance(value, Decimal):
        text = format(value, "f")
    else:
        text = str(value)
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


def _copy_text(table: pa.Table) -> io.StringIO:
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    lines = ["\t".join(_copy_value(col[r]) for col in columns) for r in range(table.num_rows)]
    return io.StringIO("\n".join(lines) + ("\n" if lines else ""))


def restore_day(settings: Settings, day: date, tables: Iterable[str] = tuple(TABLES),
                progress: Progress = _quiet) -> list[RestoredTable]:
    """Load the archived rows of `day` back into raw, exactly once: rows already there (same
    id) are left alone; a row clashing with a different one at the same Kafka coordinates
    stops the restore with nothing loaded. Kafka coordinates, epochs and ingest times are
    the original ones, so ingestion's checks and dbt's change detection see them as they
    were (the ingest ledger, `ops.ingest_batches`, is not touched)."""
    fs, root = filesystem(settings)
    found: dict[str, list[str]] = {}
    for name in tables:
        table = TABLES[name]
        try:
            files = sorted(fs.glob(f"{day_dir(root, table, day)}/part-*.parquet"))
        except OSError as exc:
            raise UserError(f"Cannot read the archive at {archive_url(settings)} "
                            f"({exc.strerror or exc}).") from exc
        if files:
            found[name] = files
    if not found:
        raise UserError(f"The archive at {archive_url(settings)} holds nothing for {day}: "
                        "`ecom archive list` shows the archived days.")
    out = []
    conn = connect(settings, "admin")
    try:
        with conn, conn.cursor() as cur:
            for name, files in found.items():
                out.append(_restore_table(cur, fs, TABLES[name], day, files, progress))
    finally:
        conn.close()
    return out


def _restore_table(cur: Any, fs: Any, table: ArchivedTable, day: date, files: list[str],
                   progress: Progress) -> RestoredTable:
    live = [c.name for c in table_columns(cur, table)]
    cur.execute(f"create temp table restore_rows (like {table.relation}) on commit drop")
    archived = 0
    columns: list[str] = []
    for path in files:
        with fs.open(path, "rb") as fh:
            data = pq.read_table(fh)
        columns = [c for c in data.column_names if c in live]
        if table.key not in columns:
            raise UserError(f"Archive part {path} has no {table.key} column: it is not a part "
                            f"of {table.relation}.")
        progress(f"  {path}: {data.num_rows:,} rows")
        cur.copy_expert(f"copy restore_rows ({', '.join(columns)}) from stdin",
                        _copy_text(data.select(columns)), size=1 << 20)
        archived += data.num_rows
    cols = ", ".join(columns)
    key = table.key
    cur.execute(f"select count(distinct t.{key}), count(distinct t.{key}) filter (where exists "
                f"(select from {table.relation} r where r.{key} = t.{key})) "
                "from restore_rows t")
    distinct, present = cur.fetchone()
    overriding = " overriding system value" if key == "rejected_id" else ""
    cur.execute(f"insert into {table.relation} ({cols}){overriding} "
                f"select distinct on ({key}) {cols} from restore_rows t where not exists "
                f"(select from {table.relation} r where r.{key} = t.{key}) "
                f"order by {key} on conflict do nothing")
    loaded = cur.rowcount
    clashes = distinct - present - loaded
    if clashes:
        raise UserError(
            f"{clashes:,} archived row(s) of {table.relation} {day} clash with different rows "
            "at the same Kafka coordinates (the broker re-used offsets without a new epoch?): "
            "nothing was restored.")
    cur.execute("drop table restore_rows")
    return RestoredTable(table.name, day, len(files), archived, loaded, present)
