"""The run manifest: what a simulation really delivered, to reconcile the warehouse against.

`Tally` counts deliveries as the sink acknowledges them (never what was merely sent);
`build_manifest` turns it into a `Manifest`, written as `<run_id>.json` next to a sidecar
`<run_id>.ids.txt` (sorted valid event_ids, one per line; its sha256 is in the manifest).
Other stages read it back with `load_manifest(path)`.

Definitions used by every count (all days are UTC dates of `event_timestamp`):
- valid events: acknowledged, contract-valid events, each event_id once (duplicates
  re-sent are counted separately, as the bad class `duplicate_event_id`);
- revenue: sum(price * quantity) over purchase events, exact decimal strings;
- orders: sessions with >= 1 purchase (one checkout per session); `orders_by_day` counts
  distinct sessions with a purchase timestamped that day;
- distinct users/sessions by day: among the valid events timestamped that day;
- `events_by_day_category_type`: category "(none)" for page views without a product;
- `stream_sha256`: sha256 of every message value sent, each followed by a newline (for
  `--output`, the digest of the file);
- late events: valid events delivered hours or days after their event_timestamp.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecom.errors import UserError
from ecom.events import EVENT_TYPES, EXPECTED_REASON, BadClass
from simulator.catalog import price_text

MANIFEST_VERSION = 1

#: Category key for events without a product (home/search page views), as in
#: raw.realtime_metrics.
NO_CATEGORY = "(none)"
#: Delivery record kinds (first element of the record tuple travelling with a message).
VALID, BAD = 0, 1


def valid_record(event_type: str, day: str, category: str | None, cents: int, quantity: int,
                 event_id: str, session_id: str, user_id: str, late: bool) -> tuple:
    """The record a valid event carries to the delivery callback (cents = line revenue)."""
    return (VALID, event_type, day, category, cents, quantity, event_id, session_id, user_id,
            late)


def bad_record(cls: BadClass) -> tuple:
    return (BAD, cls)


class Tally:
    """Counts acknowledged deliveries; `failed` collects the ones the sink could not deliver."""

    def __init__(self) -> None:
        # per day: counts by (category, event_type), distinct user ids, distinct session ids
        self.days: dict[str, tuple[dict[tuple[str | None, str], int], set[str], set[str]]] = {}
        self.revenue: dict[tuple[str, str], int] = {}
        self.units: dict[tuple[str, str], int] = {}
        self.order_days: set[tuple[str, str]] = set()
        self.event_ids: list[str] = []
        self.bad: dict[BadClass, int] = dict.fromkeys(BadClass, 0)
        self.late = 0
        self.acknowledged = 0
        self.failed = 0
        self.first_error: str | None = None

    def ack(self, rec: tuple) -> None:
        self.acknowledged += 1
        if rec[0] != VALID:
            self.bad[rec[1]] += 1
            return
        _, event_type, day, category, cents, quantity, event_id, session_id, user_id, late = rec
        state = self.days.get(day)
        if state is None:
            state = self.days[day] = ({}, set(), set())
        counts, users, sessions = state
        key = (category, event_type)
        counts[key] = counts.get(key, 0) + 1
        users.add(user_id)
        sessions.add(session_id)
        self.event_ids.append(event_id)
        if late:
            self.late += 1
        if event_type == "purchase":
            key = (day, category)
            self.revenue[key] = self.revenue.get(key, 0) + cents
            self.units[key] = self.units.get(key, 0) + quantity
            self.order_days.add((day, session_id))

    def fail(self, rec: tuple, error: object) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = str(error)


@dataclass(frozen=True)
class Manifest:
    """A run's parameters and exactly what was acknowledged (see the module docstring)."""

    run_id: str
    status: str  # complete | interrupted | failed
    mode: str  # backfill | live
    parameters: dict[str, Any]
    sink: dict[str, Any]
    started_at: str
    finished_at: str
    elapsed_seconds: float
    messages_acknowledged: int
    messages_failed: int
    valid_events: int
    events_by_type: dict[str, int]
    events_by_day: dict[str, int]
    events_by_day_type: dict[str, dict[str, int]]
    events_by_day_category_type: dict[str, dict[str, dict[str, int]]]
    revenue_total: str
    revenue_by_day: dict[str, str]
    revenue_by_day_category: dict[str, dict[str, str]]
    units_by_day_category: dict[str, dict[str, int]]
    orders: int
    orders_by_day: dict[str, int]
    distinct_users: int
    distinct_sessions: int
    distinct_users_by_day: dict[str, int]
    distinct_sessions_by_day: dict[str, int]
    bad_events: int
    bad_events_by_class: dict[str, int]
    rejected_by_reason: dict[str, int]
    duplicates_resent: int
    late_events: int
    stream_sha256: str
    event_ids_file: str
    event_ids_sha256: str
    manifest_version: int = MANIFEST_VERSION
    path: Path | None = field(default=None, compare=False)

    def event_ids(self) -> list[str]:
        """The sorted valid event_ids from the sidecar file, checked against the digest."""
        if self.path is None:
            raise UserError("This manifest was not loaded from a file; its id list is unknown.")
        ids_path = self.path.parent / self.event_ids_file
        try:
            data = ids_path.read_bytes()
        except OSError as exc:
            raise UserError(f"Cannot read the event id file {ids_path} ({exc.strerror}); it "
                            "belongs next to the manifest.") from exc
        if hashlib.sha256(data).hexdigest() != self.event_ids_sha256:
            raise UserError(f"{ids_path} does not match the digest in its manifest; the file "
                            "was modified or belongs to another run.")
        return data.decode().split()

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=2, sort_keys=False) + "\n"


def ids_digest(sorted_ids: list[str]) -> tuple[bytes, str]:
    """The sidecar content (one id per line) and its sha256."""
    data = "".join(f"{i}\n" for i in sorted_ids).encode()
    return data, hashlib.sha256(data).hexdigest()


def _nested(flat: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (outer, inner), value in sorted(flat.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        out.setdefault(outer, {})[inner] = value
    return out


def _count_by_day(pairs: set[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for day, _ in pairs:
        out[day] = out.get(day, 0) + 1
    return dict(sorted(out.items()))


def build_manifest(tally: Tally, *, run_id: str, status: str, mode: str,
                   parameters: dict[str, Any], sink: dict[str, Any], started_at: str,
                   finished_at: str, elapsed_seconds: float, stream_sha256: str,
                   ids_sha256: str) -> Manifest:
    """The manifest of a finished run from its tally (ids digest computed by the caller)."""
    by_type = dict.fromkeys(EVENT_TYPES, 0)
    by_day: dict[str, int] = {}
    by_day_type: dict[tuple[str, str], int] = {}
    by_day_category_type: dict[str, dict[str, dict[str, int]]] = {}
    for day, (counts, _, _) in sorted(tally.days.items()):
        per_category = by_day_category_type.setdefault(day, {})
        for (category, event_type), n in sorted(counts.items(), key=lambda kv: (
                kv[0][0] or "", EVENT_TYPES.index(kv[0][1]))):
            by_type[event_type] += n
            by_day[day] = by_day.get(day, 0) + n
            by_day_type[(day, event_type)] = by_day_type.get((day, event_type), 0) + n
            per_category.setdefault(category or NO_CATEGORY, {})[event_type] = n
    revenue_by_day: dict[str, int] = {}
    for (day, _), cents in tally.revenue.items():
        revenue_by_day[day] = revenue_by_day.get(day, 0) + cents
    bad = {cls.value: n for cls, n in tally.bad.items()}
    rejected = {EXPECTED_REASON[cls].value: n for cls, n in tally.bad.items()}
    return Manifest(
        run_id=run_id,
        status=status,
        mode=mode,
        parameters=parameters,
        sink=sink,
        started_at=started_at,
        finished_at=finished_at,
        elapsed_seconds=round(elapsed_seconds, 3),
        messages_acknowledged=tally.acknowledged,
        messages_failed=tally.failed,
        valid_events=len(tally.event_ids),
        events_by_type=by_type,
        events_by_day=dict(sorted(by_day.items())),
        events_by_day_type=_nested(by_day_type),
        events_by_day_category_type=by_day_category_type,
        revenue_total=price_text(sum(tally.revenue.values())),
        revenue_by_day={d: price_text(c) for d, c in sorted(revenue_by_day.items())},
        revenue_by_day_category={d: {c: price_text(v) for c, v in cats.items()}
                                 for d, cats in _nested(tally.revenue).items()},
        units_by_day_category=_nested(tally.units),
        orders=len({session for _, session in tally.order_days}),
        orders_by_day=_count_by_day(tally.order_days),
        distinct_users=len(set().union(*(users for _, users, _ in tally.days.values()))),
        distinct_sessions=len(set().union(*(s for _, _, s in tally.days.values()))),
        distinct_users_by_day={d: len(st[1]) for d, st in sorted(tally.days.items())},
        distinct_sessions_by_day={d: len(st[2]) for d, st in sorted(tally.days.items())},
        bad_events=sum(bad.values()),
        bad_events_by_class=bad,
        rejected_by_reason=rejected,
        duplicates_resent=tally.bad[BadClass.DUPLICATE_EVENT_ID],
        late_events=tally.late,
        stream_sha256=stream_sha256,
        event_ids_file=f"{run_id}.ids.txt",
        event_ids_sha256=ids_sha256,
    )


def write_manifest(tally: Tally, path: Path, **kwargs: Any) -> Manifest:
    """Write the sidecar id file and the manifest JSON at `path`; returns the manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data, digest = ids_digest(sorted(tally.event_ids))
    run_id = kwargs["run_id"]
    manifest = build_manifest(tally, ids_sha256=digest, **kwargs)
    (path.parent / f"{run_id}.ids.txt").write_bytes(data)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.to_json())
    tmp.replace(path)
    return load_manifest(path)


def load_manifest(path: Path | str) -> Manifest:
    """Read a manifest written by `ecom simulate` (raises UserError if unreadable)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"Cannot read the simulator manifest {path} ({exc.strerror}).") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not a simulator manifest (invalid JSON: {exc}).") from exc
    if data.get("manifest_version") != MANIFEST_VERSION:
        raise UserError(f"{path} has manifest version {data.get('manifest_version')!r}; this "
                        f"code reads version {MANIFEST_VERSION}. Re-run the simulation.")
    known = set(Manifest.__dataclass_fields__) - {"path"}
    missing = known - set(data) - {"manifest_version"}
    if missing:
        raise UserError(f"{path} lacks manifest fields {sorted(missing)}; re-run the simulation.")
    return Manifest(**{k: v for k, v in data.items() if k in known}, path=path)
