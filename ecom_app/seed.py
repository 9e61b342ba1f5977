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
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ingestion.validation import Reject, ValidEvent, validate

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
WRITE_TIME_COLUMNS = frozenset({"created_at", "updated_at", "processed_at", "sessionized_at"})


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
