"""Publish valid, cleaned events to the `processed-events` topic (JSON, keyed by user_id).

Delivery is at-least-once, by design: the ingest query publishes a batch's landed events
after its PostgreSQL commit and waits for every acknowledgement before Spark may commit the
batch to its checkpoint. A crash in between replays the batch: the sink lands nothing new
(the ledger knows the batch) but the events are published again. Consumers de-duplicate by
`event_id` (the realtime windows recompute from PostgreSQL, so repeats are harmless there).

"Cleaned" means: only the contract's fields (unknown keys dropped; an absent optional field
may be omitted or null), the canonical lower-case event_id, and the timestamp as UTC
`YYYY-MM-DDTHH:MM:SS.mmmZ`. Events that arrive in exactly that form are passed on as sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

import msgspec

from ecom.config import Settings
from ecom.errors import UserError
from ecom.kafka_clients import confluent_producer, kafka_python_producer
from ingestion.validation import ValidEvent

_ENCODER = msgspec.json.Encoder()


def processed_json(event: ValidEvent) -> bytes:
    """The processed-events message value of one event (absent optional fields: null)."""
    if event.canonical:  # already exactly the cleaned form (absent fields omitted)
        return event.raw_json.encode()
    ts = event.event_timestamp.astimezone(UTC)
    return _ENCODER.encode({
        "event_id": event.event_id,
        "user_id": event.user_id,
        "session_id": event.session_id,
        "event_type": event.event_type,
        "event_timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
        "product_id": event.product_id,
        "category": event.category,
        "price": event.price,
        "quantity": event.quantity,
        "page_url": event.page_url,
        "user_agent": event.user_agent,
        "ip_address": event.ip_address,
    })


class Publisher:
    """A producer for one topic; `publish` returns once every message is acknowledged."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self.settings = settings
        self.topic = topic or settings.topic_processed
        self.client = settings.kafka_client
        self._producer: Any = None
        self._errors: list[str] = []

    def _confluent(self) -> Any:
        return confluent_producer(self.settings, "ecom-ingest", **{
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "enable.idempotence": False,
            "log_level": 3,
            # failures only: a Python callback per acknowledged message cost ~1 us each
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
        })

    def _kafka_python(self) -> Any:
        return kafka_python_producer(self.settings, "ecom-ingest", linger_ms=20,
                                     batch_size=256 * 1024)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None and len(self._errors) < 5:
            self._errors.append(str(err))

    def publish(self, events: Iterable[ValidEvent], timeout_s: float = 120.0) -> int:
        """Send the events and wait for every acknowledgement; UserError if any failed."""
        return self.publish_messages(((e.user_id.encode(), processed_json(e)) for e in events),
                                     timeout_s)

    def publish_messages(self, messages: Iterable[tuple[bytes, bytes]],
                         timeout_s: float = 120.0) -> int:
        """Send (key, value) messages and wait for every acknowledgement (see publish)."""
        if self._producer is None:
            self._producer = (self._confluent() if self.client == "confluent"
                              else self._kafka_python())
        sent = 0
        if self.client == "confluent":
            produce, poll = self._producer.produce, self._producer.poll
            for key, value in messages:
                try:
                    produce(self.topic, value, key)
                except BufferError:
                    poll(0.1)
                    produce(self.topic, value, key)
                sent += 1
                if not sent & 4095:
                    poll(0)
            left = self._producer.flush(timeout_s)
            if left:
                self._errors.append(f"{left} messages not acknowledged within {timeout_s:.0f} s")
        else:
            futures = [self._producer.send(self.topic, value, key) for key, value in messages]
            sent = len(futures)
            self._producer.flush(timeout_s)
            for future in futures:
                if future.failed() and len(self._errors) < 5:
                    self._errors.append(str(future.exception))
        if self._errors:
            errors, self._errors = self._errors, []
            raise UserError(
                f"Publishing to {self.topic} failed ({'; '.join(errors)}). The batch is not "
                "committed and will be retried on restart."
            )
        return sent

    def close(self) -> None:
        if self._producer is not None:
            if self.client == "confluent":
                self._producer.flush(10)
            else:
                self._producer.close(10)
            self._producer = None
