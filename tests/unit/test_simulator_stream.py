"""Simulator streams end to end without a broker: determinism, bad and late events, manifest.

The manifest is reconciled against the JSONL output re-read from disk and judged by
ingestion's own validator (the contract's enforcer), so "each bad class is rejected for its
reason" and "the manifest is exact" are checked against the real rules.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ecom.errors import UserError
from ecom.events import EXPECTED_REASON, BadClass, RejectReason
from ingestion.validation import Reject, validate
from simulator.bad_events import corrupt
from simulator.catalog import build_catalog
from simulator.manifest import BAD, Tally, load_manifest
from simulator.run import (
    BackfillPlan,
    LivePlan,
    SimulationConfig,
    backfill_stream,
    catalog_for,
    live_stream,
    simulate,
)
from simulator.sinks import FileSink

CFG = SimulationConfig(seed=3, bad_rate=0.1, late_rate=0.1, n_users=300, n_products=120)
FIXED_END = date(2026, 3, 1)


def _recent_end() -> date:
    """An end date two days ago: FUTURE_TIMESTAMP events are then in the future for real."""
    return datetime.now(UTC).date() - timedelta(days=2)


def _run_to_file(tmp_path: Path, cfg: SimulationConfig, plan, name: str = "run"):
    tally = Tally()
    out = tmp_path / f"{name}.jsonl"
    manifest = simulate(cfg, plan, FileSink(out, tally), tally, tmp_path / f"{name}.json")
    return manifest, out


@pytest.fixture(scope="module")
def backfill_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim")
    plan = BackfillPlan(days=3, events_per_day=1500, end_date=_recent_end())
    manifest, out = _run_to_file(tmp, CFG, plan)
    return manifest, out, plan


def _reconcile(lines: list[bytes], reference_ms: int) -> dict:
    """What an exact consumer of this stream would land, using ingestion's validator."""
    seen: set[str] = set()
    by_day_type: Counter = Counter()
    by_day_category_type: Counter = Counter()
    day_users, day_sessions = set(), set()
    revenue: Counter = Counter()
    orders: set = set()
    rejected: Counter = Counter()
    users, sessions = set(), set()
    for line in lines:
        result = validate(line, reference_ms)
        if isinstance(result, Reject):
            rejected[result.reason.value] += 1
            continue
        if result.event_id in seen:
            rejected[RejectReason.DUPLICATE_EVENT_ID.value] += 1
            continue
        seen.add(result.event_id)
        day = result.event_timestamp.date().isoformat()
        by_day_type[(day, result.event_type)] += 1
        by_day_category_type[(day, result.category or "(none)", result.event_type)] += 1
        day_users.add((day, result.user_id))
        day_sessions.add((day, result.session_id))
        users.add(result.user_id)
        sessions.add(result.session_id)
        if result.event_type == "purchase":
            revenue[(day, result.category)] += Decimal(str(result.price)) * result.quantity
            orders.add((day, result.session_id))
    return {"ids": sorted(seen), "by_day_type": by_day_type, "revenue": revenue,
            "by_day_category_type": by_day_category_type,
            "users_by_day": Counter(d for d, _ in day_users),
            "sessions_by_day": Counter(d for d, _ in day_sessions),
            "orders": orders, "rejected": rejected, "users": users, "sessions": sessions}


def test_manifest_reconciles_exactly_with_the_stream(backfill_run) -> None:
    manifest, out, plan = backfill_run
    lines = out.read_bytes().splitlines()
    got = _reconcile(lines, int(time.time() * 1000))

    assert manifest.status == "complete" and manifest.messages_failed == 0
    assert manifest.messages_acknowledged == len(lines)
    assert manifest.valid_events == len(got["ids"]) == plan.expected_valid()
    assert manifest.event_ids() == got["ids"]
    sidecar = (out.parent / manifest.event_ids_file).read_bytes()
    assert hashlib.sha256(sidecar).hexdigest() == manifest.event_ids_sha256
    flat = {(d, t): n for d, types in manifest.events_by_day_type.items()
            for t, n in types.items()}
    assert flat == dict(got["by_day_type"])
    assert sum(manifest.events_by_type.values()) == manifest.valid_events
    assert sum(manifest.events_by_day.values()) == manifest.valid_events
    assert {(d, c, t): n for d, cats in manifest.events_by_day_category_type.items()
            for c, types in cats.items() for t, n in types.items()} == \
        dict(got["by_day_category_type"])
    assert manifest.distinct_users_by_day == dict(got["users_by_day"])
    assert manifest.distinct_sessions_by_day == dict(got["sessions_by_day"])
    assert set(manifest.events_by_day) <= {(plan.start_date + timedelta(days=i)).isoformat()
                                           for i in range(plan.days)}
    money = {(d, c): Decimal(v) for d, cats in manifest.revenue_by_day_category.items()
             for c, v in cats.items()}
    assert money == dict(got["revenue"])
    assert Decimal(manifest.revenue_total) == sum(got["revenue"].values())
    assert sum(Decimal(v) for v in manifest.revenue_by_day.values()) == \
        Decimal(manifest.revenue_total)
    assert manifest.orders_by_day == dict(Counter(day for day, _ in got["orders"]))
    assert manifest.orders == len({s for _, s in got["orders"]}) > 0
    assert manifest.distinct_users == len(got["users"])
    assert manifest.distinct_sessions == len(got["sessions"])
    assert manifest.rejected_by_reason == {
        reason.value: got["rejected"][reason.value] for reason in EXPECTED_REASON.values()}
    assert manifest.bad_events == sum(got["rejected"].values())
    assert manifest.duplicates_resent == got["rejected"]["duplicate_event_id"]


def test_every_bad_class_is_produced_and_counted(backfill_run) -> None:
    manifest, _out, _ = backfill_run
    assert set(manifest.bad_events_by_class) == {c.value for c in BadClass}
    assert all(n > 0 for n in manifest.bad_events_by_class.values())
    for cls, n in manifest.bad_events_by_class.items():
        assert manifest.rejected_by_reason[EXPECTED_REASON[BadClass(cls)].value] == n
    total = manifest.messages_acknowledged
    assert 0.08 < manifest.bad_events / total < 0.12  # --bad-rate 0.1 of all messages


@pytest.mark.parametrize("cls", [c for c in BadClass if c is not BadClass.DUPLICATE_EVENT_ID])
def test_each_bad_class_breaks_exactly_its_rule(cls: BadClass) -> None:
    catalog = build_catalog(seed=1, n_products=40, n_users=20)
    plan = BackfillPlan(days=1, events_per_day=400, end_date=_recent_end())
    templates = [json.loads(v) for _, v, _ in backfill_stream(
        replace(CFG, bad_rate=0.0, late_rate=0.0), plan, catalog)]
    kinds = {(t["event_type"], "product_id" in t): t for t in templates}
    assert len(kinds) >= 5  # page views with and without product, every other type
    rng = random.Random(2)
    now_ms = int(time.time() * 1000)
    future = datetime.fromtimestamp(now_ms / 1000 + 400 * 86400, UTC)
    future_ts = future.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for template in kinds.values():
        for _ in range(8):
            value = corrupt(cls, rng, template, catalog.products[3],
                            "0b0d3c35-7b5f-4b44-9c5c-4f1e9a0e8c11", future_ts)
            result = validate(value, now_ms)
            assert isinstance(result, Reject), (cls, value)
            assert result.reason == EXPECTED_REASON[cls], (cls, result.message, value)
            assert b"\n" not in value and b"\x00" not in value


def test_duplicates_are_exact_resends_of_earlier_valid_messages(backfill_run) -> None:
    manifest, out, _ = backfill_run
    earlier: set[bytes] = set()
    dups = 0
    for line in out.read_bytes().splitlines():
        if line in earlier:
            dups += 1
            assert not isinstance(validate(line, int(time.time() * 1000)), Reject)
        earlier.add(line)
    assert dups == manifest.duplicates_resent > 0


def test_same_seed_gives_a_byte_identical_stream(tmp_path: Path) -> None:
    plan = BackfillPlan(days=2, events_per_day=800, end_date=FIXED_END)
    m1, out1 = _run_to_file(tmp_path, CFG, plan, "a")
    m2, out2 = _run_to_file(tmp_path, CFG, plan, "b")
    m3, out3 = _run_to_file(tmp_path, replace(CFG, seed=4), plan, "c")
    assert out1.read_bytes() == out2.read_bytes()
    assert m1.stream_sha256 == hashlib.sha256(out1.read_bytes()).hexdigest()
    assert m1.stream_sha256 == m2.stream_sha256 != m3.stream_sha256
    assert m1.event_ids_sha256 == m2.event_ids_sha256 != m3.event_ids_sha256
    assert out1.read_bytes() != out3.read_bytes()


def test_valid_events_do_not_depend_on_bad_or_late_rates() -> None:
    plan = BackfillPlan(days=2, events_per_day=600, end_date=FIXED_END)
    catalog = catalog_for(CFG)

    def valid_values(cfg: SimulationConfig) -> Counter:
        return Counter(v for _, v, rec in backfill_stream(cfg, plan, catalog) if rec[0] != BAD)

    clean = valid_values(replace(CFG, bad_rate=0.0, late_rate=0.0))
    assert valid_values(CFG) == clean
    resent = {v for _, v, rec in backfill_stream(CFG, plan, catalog)
              if rec[0] == BAD and rec[1] is BadClass.DUPLICATE_EVENT_ID}
    assert resent and resent <= set(clean)


def test_late_events_arrive_after_later_events_and_sessions_stay_ordered() -> None:
    plan = BackfillPlan(days=3, events_per_day=800, end_date=FIXED_END)
    cfg = replace(CFG, bad_rate=0.0, late_rate=0.2)
    max_ts_sent = ""
    last_on_time = ""
    late = 0
    per_session: dict[str, list[str]] = {}
    window = (f"{plan.start_date}T00:00:00.000Z", f"{plan.end_date + timedelta(days=1)}T")
    for _, value, rec in backfill_stream(cfg, plan, catalog_for(cfg)):
        event = json.loads(value)
        ts = event["event_timestamp"]
        assert window[0] <= ts < window[1]
        if rec[-1]:  # late
            late += 1
            assert max_ts_sent > ts, "a late event arrives after later-stamped ones"
        else:
            assert ts >= last_on_time, "on-time events are sent in timestamp order"
            last_on_time = ts
        max_ts_sent = max(max_ts_sent, ts)
        per_session.setdefault(event["session_id"], []).append(ts)
    assert late > 0
    assert all(ts == sorted(ts) and len(set(ts)) == len(ts) for ts in per_session.values())


def test_late_events_are_counted_in_their_own_day(tmp_path: Path) -> None:
    plan = BackfillPlan(days=2, events_per_day=1000, end_date=FIXED_END)
    manifest, _ = _run_to_file(tmp_path, replace(CFG, bad_rate=0.0, late_rate=0.3), plan)
    assert 0.2 < manifest.late_events / manifest.valid_events < 0.4
    assert set(manifest.events_by_day) == {"2026-02-28", "2026-03-01"}


def test_live_stream_is_stamped_by_the_clock() -> None:
    clock = [1_800_000_000_000]

    def now_ms() -> int:
        clock[0] += 7
        return clock[0]

    cfg = replace(CFG, late_rate=0.2)
    stream = live_stream(cfg, LivePlan(rate=100, duration_s=1), catalog_for(cfg), now_ms)
    messages = [next(stream) for _ in range(3000)]
    per_session: dict[str, list[str]] = {}
    future = late = 0
    for _, value, rec in messages:
        if rec[0] == BAD:
            if rec[1] is BadClass.FUTURE_TIMESTAMP:
                future += 1
                ts = json.loads(value)["event_timestamp"]
                assert ts > datetime.fromtimestamp(clock[0] / 1000, UTC).isoformat()
            continue
        event = json.loads(value)
        stamp = datetime.strptime(event["event_timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        stamp_ms = int(stamp.replace(tzinfo=UTC).timestamp() * 1000)
        if rec[-1]:
            late += 1
            assert clock[0] - stamp_ms >= 3_600_000
        else:
            assert clock[0] - 30_000 < stamp_ms <= clock[0]
        per_session.setdefault(event["session_id"], []).append(event["event_timestamp"])
    assert future > 0 and late > 0
    assert all(ts == sorted(ts) and len(set(ts)) == len(ts) for ts in per_session.values())
    assert any(json.loads(v)["event_type"] == "purchase" for _, v, r in messages if r[0] != BAD)


def test_live_run_writes_a_consistent_manifest(tmp_path: Path) -> None:
    manifest, out = _run_to_file(tmp_path, CFG, LivePlan(rate=2000, duration_s=0.5))
    lines = out.read_bytes().splitlines()
    assert manifest.mode == "live" and manifest.status == "complete"
    assert manifest.messages_acknowledged == len(lines) > 0
    got = _reconcile(lines, int(time.time() * 1000))
    assert manifest.event_ids() == got["ids"]
    assert sum(manifest.events_by_type.values()) == manifest.valid_events


class _FlakySink(FileSink):
    """A file sink whose destination refuses every 10th message (test double)."""

    def __init__(self, path: Path, tally: Tally) -> None:
        super().__init__(path, tally)
        self._n = 0
        self._tally_ref = tally

    def send(self, key: bytes, value: bytes, rec: tuple) -> None:
        self._n += 1
        if self._n % 10 == 0:
            self._tally_ref.fail(rec, "broker said no")
        else:
            super().send(key, value, rec)


def test_undelivered_messages_fail_loudly_and_are_not_counted(tmp_path: Path) -> None:
    plan = BackfillPlan(days=1, events_per_day=1000, end_date=FIXED_END)
    tally = Tally()
    sink = _FlakySink(tmp_path / "flaky.jsonl", tally)
    with pytest.raises(UserError, match=r"were not acknowledged.*broker said no"):
        simulate(replace(CFG, bad_rate=0.0), plan, sink, tally, tmp_path / "flaky.json")
    manifest = load_manifest(tmp_path / "flaky.json")
    delivered = (tmp_path / "flaky.jsonl").read_bytes().splitlines()
    assert manifest.status == "failed"
    assert manifest.messages_failed == tally.failed > 0
    assert manifest.messages_acknowledged == len(delivered)
    assert manifest.valid_events == len(delivered)
    assert set(manifest.event_ids()) == {json.loads(v)["event_id"] for v in delivered}


def test_manifest_loading_checks_version_and_digest(backfill_run, tmp_path: Path) -> None:
    manifest, _, _ = backfill_run
    again = load_manifest(manifest.path)
    assert again == manifest
    copy = tmp_path / "copy.json"
    copy.write_text(manifest.path.read_text())
    (tmp_path / manifest.event_ids_file).write_text("tampered\n")
    with pytest.raises(UserError, match="does not match the digest"):
        load_manifest(copy).event_ids()
    data = json.loads(copy.read_text())
    data["manifest_version"] = 99
    copy.write_text(json.dumps(data))
    with pytest.raises(UserError, match="manifest version"):
        load_manifest(copy)
    with pytest.raises(UserError, match="Cannot read"):
        load_manifest(tmp_path / "nope.json")


def test_invalid_parameters_are_user_errors(tmp_path: Path) -> None:
    tally = Tally()
    today = datetime.now(UTC).date()
    sink = FileSink(tmp_path / "x.jsonl", tally)
    with pytest.raises(UserError, match="not in the past"):
        simulate(CFG, BackfillPlan(1, 10, today), sink, tally, None)
    with pytest.raises(UserError, match="--bad-rate"):
        simulate(replace(CFG, bad_rate=0.7), BackfillPlan(1, 10, FIXED_END), sink, tally, None)
    with pytest.raises(UserError, match="--rate"):
        simulate(CFG, LivePlan(rate=0, duration_s=1), sink, tally, None)
