"""Helpers for the dbt tests and `bench/dbt_build.py`: land simulator output, run real dbt.

Landing reuses ingestion's own validation and COPY format (`ingestion.sink`), so the rows
are exactly what the streaming job would write, without Kafka and Spark in the loop.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ecom.config import REPO_ROOT, Settings
from ecom.db import connect
from ingestion.sink import RAW_COLUMNS, KafkaRecords, raw_copy_lines, split_batch

DBT = REPO_ROOT / ".venv" / "bin" / "dbt"
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


def _next_offset(cur: Any, topic: str) -> int:
    cur.execute(
        "select coalesce(max(kafka_offset) + 1, 0) from raw.raw_events "
        "where kafka_topic = %s and kafka_partition = 0",
        (topic,),
    )
    return int(cur.fetchone()[0])


def _chunks(values: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
    streamed); without it, `ingested_at` is now(). Returns the number of rows landed;
    invalid messages raise (these fixtures are expected to be clean).
    """
    topic = topic or settings.topic_events
    landed = 0
    clock: datetime | None = None
    conn = connect(settings, "loader")
    try:
        with conn, conn.cursor() as cur:
            offset = _next_offset(cur, topic)
            for chunk in _chunks(values, LOAD_CHUNK):
                n = len(chunk)
                records = KafkaRecords(
                    topic=[topic] * n, partition=[0] * n,
                    offset=list(range(offset, offset + n)), timestamp_ms=[None] * n,
                    key=[None] * n, value=chunk,
                )
                split = split_batch(records, int(time.time() * 1000))
                if split.rejects:
                    first = split.rejects[0].reject
                    raise ValueError(f"{len(split.rejects)} invalid fixture event(s), "
                                     f"first: {first.reason.value}: {first.message}")
                lines = raw_copy_lines(split.valid)
                columns: Sequence[str] = RAW_COLUMNS
                if arrival_lag is not None:
                    stamped = []
                    for row, line in zip(split.valid, lines.split("\n"), strict=False):
                        ts = row.event.event_timestamp
                        clock = ts if clock is None or ts > clock else clock
                        stamped.append(f"{line}\t{(clock + arrival_lag).isoformat()}")
                    lines = "\n".join(stamped) + "\n"
                    columns = (*RAW_COLUMNS, "ingested_at")
                cur.copy_expert(
                    f"copy raw.raw_events ({', '.join(columns)}) from stdin",
                    io.StringIO(lines), size=1 << 20,
                )
                offset += n
                landed += n
    finally:
        conn.close()
    return landed


def event_json(**fields: Any) -> bytes:
    """One event message as the simulator would encode it (UTC ms timestamps)."""
    ts = fields.get("event_timestamp")
    if isinstance(ts, datetime):
        fields["event_timestamp"] = (
            ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        )
    return json.dumps(fields, separators=(",", ":")).encode()


def run_dbt(settings: Settings, *args: str, check: bool = True,
            timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run the real dbt CLI against `settings` (profiles.yml reads the ECOM_* env)."""
    cmd = [str(DBT), *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir",
           str(PROJECT_DIR)]
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


def query(settings: Settings, sql: str, params: Sequence[Any] | None = None,
          role: str = "admin") -> list[tuple[Any, ...]]:
    conn = connect(settings, role)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
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
    rows = query(settings, f"select {select} from {schema}.{table}")  # noqa: S608
    return sorted(rows, key=lambda r: tuple("" if v is None else v for v in r))
