"""Simulator throughput: events/s generated, and produced to the broker by each Kafka client.

One run measures the same backfill workload (same seed) three ways:
  1. generation only (messages built, accounted and dropped),
  2. produced with confluent-kafka (librdkafka),
  3. produced with kafka-python,
each to a fresh 3-partition topic with acks=all, and prints events/s plus the ratio
confluent / kafka-python (the hot-path choice needs >= 2x) and the >= 50k events/s target.

By default it starts a private embedded broker (tansu) on a free port and stops it after;
`--bootstrap host:port` uses a running broker instead.

    .venv/bin/python bench/simulate.py [--days 2] [--events-per-day 100000] [--bootstrap ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ecom.config import Settings
from ecom.ports import free_port
from ecom.stack import broker
from simulator.manifest import Tally
from simulator.run import BackfillPlan, SimulationConfig, catalog_for, simulate
from simulator.sinks import DiscardSink, kafka_sink

REPO = Path(__file__).resolve().parent.parent

TARGET = 50_000


def _create_topic(settings: Settings, partitions: int = 3) -> str:
    from ecom.kafka_admin import create_topic

    return create_topic(settings, f"bench-sim-{uuid.uuid4().hex[:8]}", partitions)


def _measure(label: str, cfg: SimulationConfig, plan: BackfillPlan, catalog, make_sink) -> dict:
    tally = Tally()
    sink = make_sink(tally)
    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = simulate(cfg, plan, sink, tally, Path(tmp) / "bench.json", catalog=catalog)
    cpu = time.process_time() - cpu
    assert manifest is not None and manifest.messages_failed == 0
    n = manifest.messages_acknowledged
    rate = n / manifest.elapsed_seconds
    print(f"  {label:<26} {n:>9,} messages in {manifest.elapsed_seconds:6.2f} s = "
          f"{rate:>9,.0f} events/s  ({cpu / n * 1e6:5.2f} us CPU/event, all threads)",
          flush=True)
    return {"messages": n, "seconds": manifest.elapsed_seconds, "events_per_s": round(rate),
            "cpu_us_per_event": round(cpu / n * 1e6, 2), "stream_sha256": manifest.stream_sha256}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=2, help="backfill days (default 2)")
    parser.add_argument("--events-per-day", type=int, default=100_000,
                        help="mean valid events per day (default 100000)")
    parser.add_argument("--bad-rate", type=float, default=0.01, help="default 0.01")
    parser.add_argument("--late-rate", type=float, default=0.02, help="default 0.02")
    parser.add_argument("--bootstrap", help="use this running broker instead of a private one")
    parser.add_argument("--clients", default="confluent,kafka-python",
                        help="comma-separated clients to measure (default both)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    cfg = SimulationConfig(seed=2026, bad_rate=args.bad_rate, late_rate=args.late_rate)
    end_date = datetime.now(UTC).date() - timedelta(days=1)
    plan = BackfillPlan(args.days, args.events_per_day, end_date)
    started = time.perf_counter()
    catalog = catalog_for(cfg)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (other work "
          "on the machine lowers the events/s figures; CPU/event is steadier)")
    print(f"catalogue: {len(catalog.products):,} products, {len(catalog.users):,} users in "
          f"{time.perf_counter() - started:.2f} s; workload: {args.days} days x "
          f"{args.events_per_day:,} events/day, bad {args.bad_rate}, late {args.late_rate}")

    results: dict[str, dict] = {}
    results["generate"] = _measure("generation only", cfg, plan, catalog, DiscardSink)

    own_broker = None
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as data_dir:
        if args.bootstrap:
            settings = Settings().replace(kafka_bootstrap_servers=args.bootstrap)
        else:
            settings = Settings().replace(data_dir=Path(data_dir),
                               kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
            broker.start(settings)
            own_broker = settings
        try:
            for client in [c.strip() for c in args.clients.split(",") if c.strip()]:
                topic = _create_topic(settings)
                results[client] = _measure(
                    f"produced via {client}", cfg, plan, catalog,
                    lambda tally, c=client, t=topic: kafka_sink(
                        c, settings, t, tally))
        finally:
            if own_broker is not None:
                broker.stop(own_broker)

    print(f"\nload average {os.getloadavg()[0]:.1f} at end")
    digests = {r["stream_sha256"] for r in results.values()}
    print(f"same stream in every run: {'yes' if len(digests) == 1 else 'NO'}")
    if "confluent" in results and "kafka-python" in results:
        ratio = results["confluent"]["events_per_s"] / results["kafka-python"]["events_per_s"]
        results["ratio_confluent_over_kafka_python"] = round(ratio, 2)
        print(f"ratio confluent / kafka-python: {ratio:.2f}x "
              f"({'>=' if ratio >= 2 else '<'} 2x: "
              f"{'confluent on the hot path' if ratio >= 2 else 'kafka-python is enough'})")
    best = max((results[c]["events_per_s"] for c in ("confluent", "kafka-python")
                if c in results), default=0)
    if best:
        verdict = "meets" if best >= TARGET else "MISSES"
        print(f"best produced rate {best:,} events/s {verdict} the {TARGET:,} events/s target")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
