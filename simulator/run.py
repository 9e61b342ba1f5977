"""Orchestration: message streams for backfill and live mode, pushed through a sink.

A stream is an iterator of `(key, value, record)` in send order: key = user_id bytes,
value = the Kafka message bytes, record = what the manifest counts once it is delivered.

- Backfill: whole days ending at `end_date` (inclusive). Each hour gets its share of the
  day's events (diurnal shape, weekday factor); sessions start uniformly inside the hour.
  Messages are sent in arrival order: on-time events at their timestamp, events of "late"
  sessions hours or days after it. No timestamp reaches past the window end.
- Live: `rate` messages/s stamped with the wall clock, from a pool of concurrent sessions.

Seeded RNG streams are independent: the valid events depend only on (seed, catalogue size,
funnel, dates), not on the bad or late rates; bad messages come from their own RNG.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ecom.errors import UserError
from ecom.events import BadClass
from simulator.bad_events import Injector
from simulator.catalog import Catalog, User, build_catalog
from simulator.encode import encode_event, format_ts, time_uuid
from simulator.manifest import (
    VALID,
    Manifest,
    Tally,
    bad_record,
    valid_record,
    write_manifest,
)
from simulator.sessions import FunnelParams, Step, simulate_session
from simulator.sinks import Sink
from simulator.traffic import DAY_MS, HOUR_MS, day_target, hourly_targets

Message = tuple[bytes, bytes, tuple]
_EPOCH = date(1970, 1, 1)
#: FUTURE_TIMESTAMP bad events in backfill are this far after the window end, so they stay
#: in the future for any --end-date within the last year.
BACKFILL_FUTURE_DAYS = (400, 3650)
#: ...and in live mode this far after the wall clock (a client clock running ahead).
LIVE_FUTURE_MS = (HOUR_MS, 30 * DAY_MS)
#: About what the default funnel gives; sizes the pool of concurrent live sessions.
MEAN_EVENTS_PER_SESSION = 5


CATALOG_SEED = 20261125


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate, common to both modes."""

    seed: int
    # the shop (products, prices, users) is the same for every run, whatever the traffic
    # seed: a product keeps its category and price across runs into one warehouse
    catalog_seed: int = CATALOG_SEED
    bad_rate: float = 0.0
    late_rate: float = 0.0
    bad_classes: tuple[BadClass, ...] = tuple(BadClass)
    n_users: int = 10_000
    n_products: int = 2_000
    returning_share: float = 0.6
    funnel: FunnelParams = field(default_factory=FunnelParams)

    def validate(self) -> None:
        if not 0.0 <= self.bad_rate < 0.5:
            raise UserError(f"--bad-rate must be in [0, 0.5), got {self.bad_rate}.")
        if not 0.0 <= self.late_rate <= 1.0:
            raise UserError(f"--late-rate must be in [0, 1], got {self.late_rate}.")
        if self.bad_rate and not self.bad_classes:
            raise UserError("--bad-rate needs at least one --bad-class.")
        if not 0.0 <= self.returning_share <= 1.0:
            raise UserError(f"--returning-share must be in [0, 1], got {self.returning_share}.")
        if self.n_products < 8 or self.n_users < 2:
            raise UserError("Use at least 8 --products (one per category) and 2 --users.")
        try:
            self.funnel.validate()
        except ValueError as exc:
            raise UserError(f"Invalid funnel parameter: {exc}.") from exc


@dataclass(frozen=True)
class BackfillPlan:
    """`days` whole UTC days ending with `end_date`, about `events_per_day` valid events each."""

    days: int
    events_per_day: int
    end_date: date

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)

    @property
    def window_end_ms(self) -> int:
        return (self.end_date - _EPOCH).days * DAY_MS + DAY_MS

    def expected_valid(self) -> int:
        return sum(day_target(self.events_per_day, self.start_date + timedelta(days=i))
                   for i in range(self.days))

    def validate(self, today: date) -> None:
        if self.days < 1 or self.events_per_day < 1:
            raise UserError("--days and --events-per-day must be at least 1.")
        if self.end_date >= today:
            raise UserError(
                f"--end-date {self.end_date} is not in the past (today is {today} UTC): events "
                "would be stamped in the future. Use yesterday or earlier.")


@dataclass(frozen=True)
class LivePlan:
    """`rate` messages per second for `duration_s` seconds (None: until interrupted)."""

    rate: float
    duration_s: float | None
    session_span_s: float = 10.0  # how long a live session lasts, roughly (time is compressed)

    def validate(self) -> None:
        if self.rate <= 0:
            raise UserError(f"--rate must be > 0, got {self.rate}.")
        if self.duration_s is not None and self.duration_s <= 0:
            raise UserError("--duration must be > 0 seconds (omit it to run until Ctrl-C).")
        if self.session_span_s <= 0:
            raise UserError("--session-seconds must be > 0.")


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"ecom-sim:{seed}:{purpose}")


def late_delay_ms(rng: random.Random) -> int:
    """How long a late session's upload is delayed: mostly hours, sometimes days."""
    if rng.random() < 0.65:
        return int(rng.uniform(1, 12) * HOUR_MS)
    return int(rng.uniform(1, 3) * DAY_MS)


def backfill_messages(cfg: SimulationConfig, plan: BackfillPlan,
                      catalog: Catalog) -> Iterator[Message]:
    """Valid events of the backfill window, in arrival order."""
    funnel, late_rate = cfg.funnel, cfg.late_rate
    window_end = plan.window_end_ms
    pending: list[tuple[int, int, Message]] = []  # heap of what arrives in a later hour
    seq = 0
    for offset in range(plan.days):
        day = plan.start_date + timedelta(days=offset)
        rng = _rng(cfg.seed, f"sessions:{day.isoformat()}")
        late_rng = _rng(cfg.seed, f"late:{day.isoformat()}")
        day_start = (day - _EPOCH).days * DAY_MS
        total = day_target(plan.events_per_day, day)
        produced = cumulative = 0
        for hour, target in enumerate(hourly_targets(total)):
            cumulative += target
            hour_start = day_start + hour * HOUR_MS
            hour_end = hour_start + HOUR_MS
            chunk = []
            while produced < cumulative:
                user = catalog.pick_user(rng)
                start = hour_start + int(rng.random() * HOUR_MS)
                session_id = time_uuid(rng, start)
                steps = simulate_session(rng, catalog, start, funnel, user.returning)
                late = late_rate > 0.0 and late_rng.random() < late_rate
                delay = late_delay_ms(late_rng) if late else 0
                key, user_id = user.key, user.user_id
                for ts, event_type, product, quantity, url in steps:
                    if ts >= window_end or produced >= total:
                        break
                    day_text, iso = format_ts(ts)
                    event_id = time_uuid(rng, ts)
                    value = encode_event(event_id, user, session_id, event_type, iso, product,
                                         quantity, url)
                    # the delivery record, as built by manifest.valid_record (inlined: hot path)
                    if product is None:
                        rec = (VALID, event_type, day_text, None, 0, 0, event_id, session_id,
                               user_id, late)
                    else:
                        cents = product.price_cents * quantity if event_type == "purchase" else 0
                        rec = (VALID, event_type, day_text, product.category, cents, quantity,
                               event_id, session_id, user_id, late)
                    produced += 1
                    arrival = ts + delay
                    item = (arrival, seq, (key, value, rec))
                    seq += 1
                    if arrival < hour_end:
                        chunk.append(item)
                    else:
                        heapq.heappush(pending, item)
            while pending and pending[0][0] < hour_end:
                chunk.append(heapq.heappop(pending))
            chunk.sort()
            for item in chunk:
                yield item[2]
    while pending:  # late sessions that arrive after the window
        yield heapq.heappop(pending)[2]


class _LiveSession:
    """A live session in progress: its steps and how far it got."""

    __slots__ = ("delay", "last_ts", "pos", "session_id", "steps", "user")

    def __init__(self, user: User, session_id: str, steps: list[Step], delay: int) -> None:
        self.user, self.session_id, self.steps, self.delay = user, session_id, steps, delay
        self.pos = 0
        self.last_ts = 0


def live_messages(cfg: SimulationConfig, plan: LivePlan, catalog: Catalog,
                  now_ms: Callable[[], int]) -> Iterator[Message]:
    """An endless stream of valid events stamped with `now_ms()` (strictly increasing per
    session); late sessions are stamped hours or days in the past."""
    rng = _rng(cfg.seed, "live")
    late_rng = _rng(cfg.seed, "late:live")
    funnel, late_rate = cfg.funnel, cfg.late_rate
    concurrency = max(1, round(plan.rate * plan.session_span_s / MEAN_EVENTS_PER_SESSION))
    active: list[_LiveSession] = []
    while True:
        while len(active) < concurrency:
            user = catalog.pick_user(rng)
            late = late_rate > 0.0 and late_rng.random() < late_rate
            delay = late_delay_ms(late_rng) if late else 0
            session_id = time_uuid(rng, now_ms() - delay)
            steps = simulate_session(rng, catalog, 0, funnel, user.returning)
            active.append(_LiveSession(user, session_id, steps, delay))
        index = int(rng.random() * len(active))
        session = active[index]
        _, event_type, product, quantity, url = session.steps[session.pos]
        session.pos += 1
        if session.pos == len(session.steps):
            active[index] = active[-1]
            active.pop()
        ts = max(now_ms() - session.delay, session.last_ts + 1)
        session.last_ts = ts
        day_text, iso = format_ts(ts)
        event_id = time_uuid(rng, ts)
        user = session.user
        value = encode_event(event_id, user, session.session_id, event_type, iso, product,
                             quantity, url)
        category = product.category if product is not None else None
        cents = product.price_cents * quantity if event_type == "purchase" else 0
        yield user.key, value, valid_record(event_type, day_text, category, cents, quantity,
                                            event_id, session.session_id, user.user_id,
                                            session.delay > 0)


def with_bad_events(messages: Iterator[Message], injector: Injector) -> Iterator[Message]:
    """The stream with injected bad messages (each right after a valid one)."""
    if not injector.active:
        yield from messages
        return
    size = injector.RING_SIZE
    ring: list[Message] = []
    countdown = injector.gap()
    for sent, message in enumerate(messages):
        yield message
        if sent < size:
            ring.append(message)
        else:
            ring[sent % size] = message
        countdown -= 1
        if not countdown:
            key, value, cls = injector.bad_message(message[0], message[1], ring)
            yield key, value, bad_record(cls)
            countdown = injector.gap()


def make_injector(cfg: SimulationConfig, catalog: Catalog,
                  future_ms: Callable[[random.Random], int]) -> Injector:
    return Injector(_rng(cfg.seed, "bad"), cfg.bad_rate, cfg.bad_classes, catalog, future_ms)


def backfill_stream(cfg: SimulationConfig, plan: BackfillPlan,
                    catalog: Catalog) -> Iterator[Message]:
    """Backfill messages including bad ones."""
    low, high = BACKFILL_FUTURE_DAYS
    window_end = plan.window_end_ms

    def future_ms(rng: random.Random) -> int:
        return window_end + int(rng.uniform(low, high) * DAY_MS)

    return with_bad_events(backfill_messages(cfg, plan, catalog),
                           make_injector(cfg, catalog, future_ms))


def live_stream(cfg: SimulationConfig, plan: LivePlan, catalog: Catalog,
                now_ms: Callable[[], int]) -> Iterator[Message]:
    """Live messages including bad ones."""
    low, high = LIVE_FUTURE_MS

    def future_ms(rng: random.Random) -> int:
        return now_ms() + low + int(rng.random() * (high - low))

    return with_bad_events(live_messages(cfg, plan, catalog, now_ms),
                           make_injector(cfg, catalog, future_ms))


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# ---- running a stream through a sink ----------------------------------------------------

#: How long the final flush waits for outstanding deliveries (longer than the producers'
#: 120 s delivery timeout), or only this long once the sink reported a problem.
DELIVERY_FLUSH_S = 150.0
BROKEN_FLUSH_S = 10.0


@dataclass
class RunResult:
    """What `pump` did: messages sent, why it stopped early (if it did), the stream digest.

    `stream_sha256` is the sha256 of every value sent, each followed by a newline: for a
    file sink, the digest of the file.
    """

    sent: int = 0
    interrupted: bool = False
    aborted: str | None = None
    stream_sha256: str = ""
    elapsed_s: float = 0.0


def pump(messages: Iterator[Message], sink: Sink, *, rate: float | None = None,
         duration_s: float | None = None,
         on_progress: Callable[[int], None] | None = None) -> RunResult:
    """Send every message (paced to `rate`/s for `duration_s` if given), then flush.

    Ctrl-C stops sending and still flushes, so what was sent is accounted for; so does a
    sink problem (a failed delivery, an unreachable broker), checked every few thousand
    messages in backfill and every tick in live mode.
    """
    digest = hashlib.sha256()
    update, send = digest.update, sink.send
    result = RunResult()
    started = time.monotonic()
    sent = 0
    # Each message allocates a few tuples that live until delivered: with the default
    # thresholds the young-generation collector runs every 700 allocations (~15% of the CPU).
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        if rate is None:
            for key, value, rec in messages:
                update(value + b"\n")
                send(key, value, rec)
                sent += 1
                if not sent & 4095:
                    if on_progress is not None:
                        on_progress(sent)
                    if sink.problem:
                        break
        else:
            while not sink.problem:
                elapsed = time.monotonic() - started
                if duration_s is not None and elapsed >= duration_s:
                    break
                due = min(int(rate * elapsed) + 1 - sent, 50_000)
                for _ in range(due):
                    key, value, rec = next(messages)
                    update(value + b"\n")
                    send(key, value, rec)
                    sent += 1
                sink.poll()
                if on_progress is not None:
                    on_progress(sent)
                time.sleep(min(0.01, max(0.0, (sent - rate * elapsed) / rate)))
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        gc.set_threshold(*thresholds)
    result.sent = sent
    result.stream_sha256 = digest.hexdigest()
    sink.flush(BROKEN_FLUSH_S if sink.problem else DELIVERY_FLUSH_S)
    result.aborted = sink.problem
    result.elapsed_s = time.monotonic() - started
    if on_progress is not None:
        on_progress(sent)
    return result


def catalog_for(cfg: SimulationConfig) -> Catalog:
    return build_catalog(cfg.catalog_seed, cfg.n_products, cfg.n_users, cfg.returning_share)


def parameters(cfg: SimulationConfig, plan: BackfillPlan | LivePlan) -> dict[str, Any]:
    """The run parameters recorded in the manifest."""
    params: dict[str, Any] = {
        "seed": cfg.seed,
        "catalog_seed": cfg.catalog_seed,
        "bad_rate": cfg.bad_rate,
        "late_rate": cfg.late_rate,
        "bad_classes": [c.value for c in cfg.bad_classes],
        "users": cfg.n_users,
        "products": cfg.n_products,
        "returning_share": cfg.returning_share,
        "funnel": asdict(cfg.funnel),
    }
    if isinstance(plan, BackfillPlan):
        params.update(days=plan.days, events_per_day=plan.events_per_day,
                      start_date=plan.start_date.isoformat(), end_date=plan.end_date.isoformat(),
                      future_timestamp_days_after_window=list(BACKFILL_FUTURE_DAYS))
    else:
        params.update(rate=plan.rate, duration_s=plan.duration_s,
                      session_span_s=plan.session_span_s,
                      future_timestamp_ms_after_now=list(LIVE_FUTURE_MS))
    return params


def simulate(cfg: SimulationConfig, plan: BackfillPlan | LivePlan, sink: Sink, tally: Tally,
             manifest_path: Path | None, *, catalog: Catalog | None = None,
             on_progress: Callable[[int], None] | None = None,
             now_ms: Callable[[], int] = wall_clock_ms) -> Manifest | None:
    """Run one simulation into `sink`; write the manifest (if a path is given) and return it.

    Raises UserError when a message was not acknowledged or the sink gave up (after
    writing the manifest with status "failed", which counts only what was acknowledged).
    """
    cfg.validate()
    catalog = catalog or catalog_for(cfg)
    started_at = datetime.now(UTC)
    if isinstance(plan, BackfillPlan):
        plan.validate(started_at.date())
        result = pump(backfill_stream(cfg, plan, catalog), sink, on_progress=on_progress)
        mode = "backfill"
    else:
        plan.validate()
        result = pump(live_stream(cfg, plan, catalog, now_ms), sink, rate=plan.rate,
                      duration_s=plan.duration_s, on_progress=on_progress)
        mode = "live"
    sink.close()
    if tally.failed or result.aborted:
        status = "failed"
    elif result.interrupted and mode == "backfill":
        status = "interrupted"
    else:
        status = "complete"
    manifest = None
    if manifest_path is not None:
        manifest = write_manifest(
            tally, manifest_path, run_id=manifest_path.stem, status=status, mode=mode,
            parameters=parameters(cfg, plan), sink=sink.describe(),
            started_at=started_at.isoformat(timespec="milliseconds"),
            finished_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            elapsed_seconds=result.elapsed_s, stream_sha256=result.stream_sha256)
    if status == "failed":
        where = f" The manifest {manifest_path} counts only the acknowledged ones." \
            if manifest_path else ""
        cause = result.aborted or f"first error: {tally.first_error}"
        what = (f"{tally.failed} of {result.sent} messages were not acknowledged by the "
                f"destination ({cause})." if tally.failed else
                f"Stopped early after {result.sent} messages ({cause}).")
        raise UserError(f"{what}{where} Check the broker, then re-run with a new --seed.")
    return manifest


def run_id_for(mode: str, seed: int, when: datetime) -> str:
    return f"sim-{mode}-{when:%Y%m%dT%H%M%S}{when.microsecond // 1000:03d}Z-seed{seed}"
