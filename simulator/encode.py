"""Turning session steps into contract JSON, fast: RNG-derived UUIDs, cached timestamp text.

Event and session ids are time-ordered UUIDs (version 7, RFC 9562), as a modern tracking
client mints them: every index keyed on them (raw's and processed_events' primary keys,
user_sessions') takes a day's new rows at its right edge instead of on random pages
across the whole history (README, "Simulating traffic", for what version-4 ids cost).

The JSON is built from pre-rendered fragments (users and products are JSON-safe by
construction) in the field order of `ecom.events.ALL_FIELDS`; absent fields are omitted.
"""

from __future__ import annotations

import random
from datetime import date

from simulator.catalog import Product, User

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_HMS: tuple[str, ...] = tuple(
    f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
)
_DAYS: dict[int, str] = {}

#: hex digit -> the RFC 4122 variant digit (10xx) keeping its two low bits
_VARIANT = {f"{n:x}": f"{8 | (n & 3):x}" for n in range(16)}
_LOW_62 = (1 << 62) - 1


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID string drawn from `rng` (reproducible, unlike uuid.uuid4())."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def time_uuid(rng: random.Random, ts_ms: int) -> str:
    """A version-7 UUID string: `ts_ms` (Unix epoch milliseconds) in its first 48 bits, then
    74 bits drawn from `rng`; ids sort by time, and the same seed gives the same ids."""
    bits = rng.getrandbits(74)
    h = f"{ts_ms:012x}7{bits >> 62:03x}{1 << 63 | bits & _LOW_62:016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def day_text(day_number: int) -> str:
    """Days since 1970-01-01 -> 'YYYY-MM-DD' (cached)."""
    text = _DAYS.get(day_number)
    if text is None:
        text = _DAYS[day_number] = date.fromordinal(_EPOCH_ORDINAL + day_number).isoformat()
    return text


def format_ts(ts_ms: int) -> tuple[str, str]:
    """Epoch milliseconds -> (UTC day 'YYYY-MM-DD', ISO-8601 'YYYY-MM-DDTHH:MM:SS.mmmZ')."""
    day_number, rest = divmod(ts_ms, 86_400_000)
    second, ms = divmod(rest, 1000)
    day = _DAYS.get(day_number) or day_text(day_number)
    return day, f"{day}T{_HMS[second]}.{ms:03d}Z"


def encode_event(event_id: str, user: User, session_id: str, event_type: str, ts: str,
                 product: Product | None, quantity: int, page_url: str) -> bytes:
    """One valid event as compact JSON bytes (ALL_FIELDS order, absent fields omitted)."""
    if product is None:
        return (f'{{"event_id":"{event_id}",{user.head_json},"session_id":"{session_id}",'
                f'"event_type":"{event_type}","event_timestamp":"{ts}",'
                f'"page_url":"{page_url}",{user.tail_json}}}').encode()
    if quantity:
        return (f'{{"event_id":"{event_id}",{user.head_json},"session_id":"{session_id}",'
                f'"event_type":"{event_type}","event_timestamp":"{ts}",{product.json},'
                f'"quantity":{quantity},"page_url":"{page_url}",{user.tail_json}}}').encode()
    return (f'{{"event_id":"{event_id}",{user.head_json},"session_id":"{session_id}",'
            f'"event_type":"{event_type}","event_timestamp":"{ts}",{product.json},'
            f'"page_url":"{page_url}",{user.tail_json}}}').encode()
