"""A seeded warehouse without Kafka and Spark: land simulator output in raw, run real dbt.

For the dbt and quality tests, the benchmarks and the dashboards' screenshots. Landing runs
ingestion's own validator (`ingestion.validation.validate`), so the rows are what the
streaming job would write, without Kafka and Spark in the loop.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ingestion.epochs import current_epoch
from ingestion.records import KafkaRecords
from ingestion.sink import land_batch
from ingestion.validation import Reject, ValidEvent, validate
from ingestion.windows import category_key, upsert_windows

DBT = Path(sys.executable).with_name("dbt")
PROJECT_DIR = REPO_ROOT / "dbt_project"
#: What `ingested_at` is set to when landing with `arrival_lag`: the arrival clock (the
#: newest event timestamp delivered so far) plus this lag, as if streamed live.
DEFAULT_ARRIVAL_LAG = timedelta(seconds=5)
LOAD_CHUNK = 50_000


def read_jsonl(path: Path) -> Iterator[bytes]:
    """The simulator's `--output` file, one Kafka message value per line."""
    with path.open("rb") as fh:
        for line in fh:
            line = line.rstrip(b"\n")
            if line:
                yield line


#: raw.raw_events columns written by `land_events` (the rest have defaults).
RAW_COLUMNS = (
    "event_id", "user_id", "session_id", "event_type", "event_timestamp", "product_id",
    "category", "price", "quantity", "page_url", "user_agent", "ip_address", "raw_data",
    "kafka_topic", "kafka_partition", "kafka_offset", "ingested_at",
)


def _copy_field(value: object) -> str:
    """One value in PostgreSQL COPY text format."""
    if value is None:
        return "\\N"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


def _copy_line(event: ValidEvent, topic: str, offset: int, ingested_at: datetime | None) -> str:
    return "\t".join(_copy_field(v) for v in (
        event.event_id, event.user_id, event.session_id, event.event_type,
        event.event_timestamp, event.product_id, event.category, event.price, event.quantity,
        event.page_url, event.user_agent, event.ip_address, event.raw_json, topic, 0, offset,
        ingested_at or "now",
    ))


def land_events(
    settings: Settings,
    values: Iterable[bytes],
    *,
    arrival_lag: timedelta | None = None,
    topic: str | None = None,
) -> int:
    """Validate and COPY event messages into raw.raw_events as the loader role.

    Offsets continue after what the topic already has in raw (partition 0). With
    `arrival_lag`, `ingested_at` follows the arrival clock (history landed in one go looks
    streamed: the newest event timestamp delivered so far plus the lag); without it,
    `ingested_at` is now(). Returns the number of rows landed; an invalid message raises
    (these fixtures are expected to be clean).
    """
    topic = topic or settings.topic_events
    now_ms = int(time.time() * 1000)
    landed = 0
    clock: datetime | None = None
    conn = connect(settings, "loader")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select coalesce(max(kafka_offset) + 1, 0) from raw.raw_events "
                "where kafka_topic = %s and kafka_partition = 0", (topic,))
            offset = int(cur.fetchone()[0])
            lines: list[str] = []
            for value in values:
                event = validate(value, now_ms)
                if isinstance(event, Reject):
                    raise ValueError(f"invalid fixture event at offset {offset}: "
                                     f"{event.reason.value}: {event.message}")
                ingested_at = None
                if arrival_lag is not None:
                    ts = event.event_timestamp
                    clock = ts if clock is None or ts > clock else clock
                    ingested_at = clock + arrival_lag
                lines.append(_copy_line(event, topic, offset, ingested_at))
                offset += 1
                if len(lines) >= LOAD_CHUNK:
                    landed += _copy(cur, lines)
                    lines = []
            landed += _copy(cur, lines)
    finally:
        conn.close()
    return landed


def _copy(cur: Any, lines: list[str]) -> int:
    if lines:
        cur.copy_expert(f"copy raw.raw_events ({', '.join(RAW_COLUMNS)}) from stdin",
                        io.StringIO("\n".join(lines) + "\n"), size=1 << 20)
    return len(lines)


@dataclass
class Landed:
    """What `land_stream` landed: counts as the stream's ledger records them."""

    batches: int = 0
    read: int = 0
    valid: int = 0
    rejected: int = 0
    windows: int = 0
    log_ends: dict[int, int] = field(default_factory=dict)


def land_stream(
    settings: Settings,
    values: Iterable[bytes],
    *,
    topic: str | None = None,
    partitions: int | None = None,
    batch_records: int = 20_000,
    arrival_lag: timedelta = DEFAULT_ARRIVAL_LAG,
    windows: bool = True,
) -> Landed:
    """Land messages as the streaming job would, without Kafka and Spark: keyed by user id
    into `partitions` (default the events topic's), cut into micro-batches of
    `batch_records`, each landed by ingestion's own sink (`ingestion.sink.land_batch`:
    valid events, dead letters with their reasons, duplicates, a ledger row per batch),
    then the 5-minute windows of the landed events recomputed by the stream's own upsert
    (`ingestion.windows.upsert_windows`; every event counts as on time). Kafka timestamps
    follow the arrival clock (the newest event time so far plus `arrival_lag`); offsets
    continue after what the topic's current epoch holds in raw.
    """
    topic = topic or settings.topic_events
    partitions = partitions or settings.events_partitions
    landed = Landed()
    conn, check = connect(settings, "loader"), connect(settings, "loader", autocommit=True)
    try:
        with check.cursor() as cur:
            epoch = current_epoch(cur, topic)
        starts = _next_offsets(check, topic, epoch, partitions)
        offsets = dict(starts)
        query_name = f"seed-{uuid.uuid4().hex[:12]}"
        lag_ms = int(arrival_lag.total_seconds() * 1000)
        clock_ms = 0
        batch: list[tuple[int, int, int, str | None, bytes]] = []

        def flush() -> None:
            if not batch:
                return
            batch.sort(key=lambda r: (r[0], r[1]))
            columns = list(zip(*batch, strict=True))
            records = KafkaRecords([topic] * len(batch), list(columns[0]), list(columns[1]),
                                   list(columns[2]), list(columns[3]), list(columns[4]))
            result = land_batch(conn, check, query_name, landed.batches, records)
            landed.batches += 1
            landed.read += result.rows_read
            landed.valid += result.valid
            landed.rejected += result.rejected
            batch.clear()

        now_ms = int(time.time() * 1000)
        for number, value in enumerate(values):
            key, ts_ms = _key_and_time(value)
            if ts_ms and ts_ms <= now_ms:  # a bad future timestamp does not move the clock
                clock_ms = max(clock_ms, ts_ms)
            partition = zlib.crc32(key.encode()) % partitions if key else number % partitions
            batch.append((partition, offsets[partition], clock_ms + lag_ms, key, value))
            offsets[partition] += 1
            if len(batch) >= batch_records:
                flush()
        flush()
        landed.log_ends = offsets
        if windows:
            landed.windows = upsert_windows(conn, _window_keys(check, topic, epoch, starts))
    finally:
        check.close()
        conn.close()
    return landed


def _key_and_time(value: bytes) -> tuple[str | None, int | None]:
    """The message's Kafka key (its user id, as the simulator keys it) and event time (ms)."""
    try:
        obj = json.loads(value)
        stamp = datetime.fromisoformat(str(obj.get("event_timestamp")))
    except (ValueError, AttributeError):
        return None, None
    key = obj.get("user_id") if isinstance(obj.get("user_id"), str) else None
    return key, int(stamp.timestamp() * 1000) if stamp.tzinfo else None


def _next_offsets(conn: Any, topic: str, epoch: int, partitions: int) -> dict[int, int]:
    with conn.cursor() as cur:
        cur.execute(
            """select kafka_partition, max(kafka_offset) + 1 from (
                   select kafka_partition, kafka_offset from raw.raw_events
                   where kafka_topic = %(t)s and kafka_epoch = %(e)s
                   union all
                   select kafka_partition, kafka_offset from raw.rejected_events
                   where kafka_topic = %(t)s and kafka_epoch = %(e)s
               ) as landed group by kafka_partition""", {"t": topic, "e": epoch})
        found = dict(cur.fetchall())
    return {p: int(found.get(p, 0)) for p in range(partitions)}


def _window_keys(conn: Any, topic: str, epoch: int,
                 starts: dict[int, int]) -> list[tuple[datetime, str, str]]:
    """(window start, event type, category) of the events landed from offsets `starts` on."""
    with conn.cursor() as cur:
        cur.execute(
            """select distinct
                   date_bin('5 minutes', event_timestamp, timestamptz 'epoch'),
                   event_type, coalesce(category, %(none)s)
               from raw.raw_events
               where kafka_topic = %(t)s and kafka_epoch = %(e)s
                   and kafka_offset >= (%(starts)s::bigint[])[kafka_partition + 1]""",
            {"t": topic, "e": epoch, "none": category_key(None),
             "starts": [starts[p] for p in sorted(starts)]})
        return cur.fetchall()


def event_json(**fields: Any) -> bytes:
    """One event message as the simulator would encode it (UTC ms timestamps)."""
    ts = fields.get("event_timestamp")
    if isinstance(ts, datetime):
        fields["event_timestamp"] = (
            ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        )
    return json.dumps(fields, separators=(",", ":")).encode()


def dbt_target_dir(settings: Settings) -> Path:
    """Where dbt writes manifest/run results for this stack (keeps parallel runs apart)."""
    return settings.data_dir / "dbt-target"


def run_dbt(settings: Settings, *args: str, check: bool = True,
            timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run the real dbt CLI against `settings` (profiles.yml reads the ECOM_* env)."""
    cmd = [str(DBT), *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir",
           str(PROJECT_DIR), "--target-path", str(dbt_target_dir(settings)),
           "--log-path", str(settings.data_dir / "dbt-logs")]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=settings.subprocess_env(), text=True, capture_output=True,
        timeout=timeout, check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dbt {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-20000:]}\n"
            f"{proc.stderr[-5000:]}"
        )
    return proc


def run_results(settings: Settings) -> list[dict[str, Any]]:
    """The last dbt invocation's results (target/run_results.json)."""
    path = dbt_target_dir(settings) / "run_results.json"
    return json.loads(path.read_text())["results"]


def query(settings: Settings, sql: str, params: Sequence[Any] | None = None,
          role: str = "admin") -> list[tuple[Any, ...]]:
    conn = connect(settings, role)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []
    finally:
        conn.close()


#: Columns that record when dbt wrote a row, not what the row says.
WRITE_TIME_COLUMNS = frozenset({"created_at", "updated_at", "processed_at", "sessionized_at",
                                "sessions_updated_at"})


def table_snapshot(settings: Settings, relation: str) -> list[tuple[Any, ...]]:
    """Every row of `relation` without its write-time columns, sorted: for equality checks."""
    schema, _, table = relation.partition(".")
    cols = [r[0] for r in query(
        settings,
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, table),
    ) if r[0] not in WRITE_TIME_COLUMNS]
    select = ", ".join(f'"{c}"::text' for c in cols)
    rows = query(settings, f"select {select} from {schema}.{table}")
    return sorted(rows, key=lambda r: tuple("" if v is None else v for v in r))
