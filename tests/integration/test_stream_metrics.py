"""The streaming job's Prometheus endpoint, scraped while the real stream runs.

`ecom ingest stream --metrics-port P` on the session's stack (own topics and checkpoint),
fed a simulated day with bad events, scraped over HTTP until it has caught up: the lag is
seen above 0 and falls to 0 on every partition, and the counters equal what landed in
`raw.raw_events` / `raw.rejected_events` (by reason) and what the simulator's manifest
says the broker acknowledged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecom.config import REPO_ROOT
from ecom.events import RejectReason
from ecom.ports import free_port, port_answers
from ingestion.checkpoint import ledger_name, stream_paths
from tests.conftest import ECOM
from tests.integration.test_ingestion_stream import (
    landed_ids,
    private_settings,
    query,
    rejected_by_reason,
    simulate,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]

DAY = datetime.now(UTC).date() - timedelta(days=53)  # a day no other test simulates

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=15) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def values(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def total(samples: Samples, name: str) -> float:
    return sum(values(samples, name).values())


@pytest.mark.slow
def test_stream_metrics_see_lag_fall_to_zero_and_count_what_landed(stack, tmp_path: Path
                                                                   ) -> None:
    settings = private_settings(stack, tmp_path)
    manifest = simulate(settings, tmp_path / "metrics.json", end_date=DAY.isoformat(),
                        events=6_000, seed=5353, bad_rate=0.05)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    log = tmp_path / "stream.log"
    proc = subprocess.Popen(
        [*ECOM, "ingest", "stream", "--max-rows-per-batch", "1500", "--metrics-port", str(port)],
        cwd=REPO_ROOT, env=settings.subprocess_env(), stdout=log.open("ab"),
        stderr=subprocess.STDOUT, start_new_session=True)
    lags: list[float] = []
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (lags[-5:], log.read_text()[-3000:])
            try:
                samples = scrape(url)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)  # Spark is starting: the endpoint comes up with the job
                continue
            lag = values(samples, "ecom_ingest_consumer_lag_records")
            if lag:
                lags.append(sum(lag.values()))
            read = total(samples, "ecom_ingest_rows_read_total")
            watermark = values(samples, "ecom_ingest_watermark_timestamp_seconds")
            if (lags and lags[-1] == 0 and read == manifest.messages_acknowledged
                    and watermark):
                break
            time.sleep(0.3)

        # seen behind, then caught up on every partition of the topic
        assert max(lags) > 0, lags
        lag = values(samples, "ecom_ingest_consumer_lag_records")
        assert {dict(k)["partition"] for k in lag} == {
            str(p) for p in range(settings.events_partitions)}
        assert {dict(k)["topic"] for k in lag} == {settings.topic_events}
        assert set(lag.values()) == {0}

        # the counters are what landed: the raw tables and the manifest agree
        landed = total(samples, "ecom_ingest_rows_landed_total")
        assert landed == len(landed_ids(settings)) == manifest.valid_events
        rejected = {dict(k)["reason"]: v for k, v in
                    values(samples, "ecom_ingest_rows_rejected_total").items()}
        assert set(rejected) == {r.value for r in RejectReason}
        in_table = rejected_by_reason(settings)
        assert {r: int(v) for r, v in rejected.items() if v} == in_table
        assert in_table == {r: n for r, n in manifest.rejected_by_reason.items() if n}
        assert landed + sum(rejected.values()) == manifest.messages_acknowledged
        [(ledger_rows,)] = query(settings, "select count(*) from ops.ingest_batches "
                                           "where query_name = %s",
                                 ledger_name(stream_paths(settings)))
        assert ledger_rows >= 4  # 1,500-row batches
        events_batches = values(samples, "ecom_ingest_batches_total")[(("query", "events"),)]
        assert events_batches >= ledger_rows  # (an empty batch writes no ledger row)
        assert values(samples, "ecom_ingest_batch_duration_seconds_count")[
            (("query", "events"),)] >= ledger_rows - 1  # the listener lags by one at most

        # freshness, the last batch, the watermark, the broker
        now = time.time()
        [last] = values(samples, "ecom_ingest_last_batch_success_timestamp_seconds").values()
        assert now - 120 < last <= now
        [newest] = values(samples, "ecom_ingest_newest_event_timestamp_seconds").values()
        [age] = values(samples, "ecom_ingest_newest_event_age_seconds").values()
        [(newest_in_raw,)] = query(
            settings, "select extract(epoch from max(event_timestamp)) from raw.raw_events "
                      "where kafka_topic = %s", settings.topic_events)
        assert newest == pytest.approx(float(newest_in_raw), abs=0.001)
        assert age == pytest.approx(now - newest, abs=120)
        [mark] = watermark.values()
        assert mark <= newest - settings.watermark_minutes * 60 + 0.001
        assert total(samples, "ecom_ingest_kafka_up") == 1
        print(f"stream metrics: lag {max(lags):,.0f} -> 0 over {len(lags)} scrapes; landed "
              f"{landed:,.0f} = raw.raw_events, rejected {sum(rejected.values()):,.0f} = "
              f"raw.rejected_events by reason; {events_batches:.0f} batches")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # a clean stop between batches
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert f"metrics: {url}" in log.read_text()
    assert not port_answers("127.0.0.1", port)  # the endpoint went with the job
