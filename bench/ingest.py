"""Ingestion throughput and latency, measured in one run on the same rows.

1. Backlog drain: the simulator fills the events topic (backfill, 1% bad), then
   `ingest stream --available-now` (the events query only) drains it into raw_events /
   rejected_events: events/s from topic into PostgreSQL, overall and without the first
   (warm-up) batch, with where the time went. The same backlog is drained once per Spark
   setup, side by side (the landing tables emptied in between): `local[N]` for N in
   --cores, and with --spark cluster a standalone cluster of N one-core workers (each its
   own process, `ingestion.cluster`), for each writer in --writers (`ECOM_SINK_WRITER`).
   The headline drain, last, is the default setup: local[2], driver writer.
2. Raw COPY: the rows that landed, copied out and COPYed into a scratch table built like
   raw.raw_events (same indexes): the floor PostgreSQL itself sets. Ratio = drain / COPY,
   for every drain.
3. Latency: both queries running continuously, valid events produced at a steady rate
   (default 2,000 events/s) stamped with the current time; the produce time of each event
   against the moment the realtime_metrics totals first include it: p50 / p95.
   (Events become visible batch by batch, in produce order up to a batch's granularity.)
4. Metrics cost: the same backlog drained again from an emptied raw, without and with the
   stream's Prometheus metrics (`ingestion.metrics`, served by the driver and scraped every
   second from another process: 15x Prometheus' default rate), `--metrics-pairs` times
   each way in ABBA order: the events/s lost to metrics, in % (`--metrics` also turns them
   on for phases 1-3).

Targets on the 2-core reference machine: drain >= 30,000 events/s, p95 <= 10 s, metrics
cost <= 2%. By default it starts a private embedded stack (PostgreSQL + tansu) and removes
it after.

    .venv/bin/python bench/ingest.py [--days 3 --events-per-day 200000] [--rate 2000]
        [--cores 1,2] [--spark local,cluster] [--writers driver,executors]
        [--metrics] [--metrics-pairs 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ecom.config import Settings
from ecom.db import connect
from ecom.kafka_admin import ensure_topics
from ecom.ports import free_port
from ecom.stack import broker, postgres
from ecom.stack.manager import up
from ingestion import cluster
from ingestion.checkpoint import reset_checkpoint
from ingestion.copy_text import RAW_COLUMNS
from ingestion.metrics import StreamMetrics
from ingestion.stream import IngestJob

REPO = Path(__file__).resolve().parent.parent

DRAIN_TARGET = 30_000
P95_TARGET = 10.0
#: the headline drain against a bare COPY of the same rows (what bench/RESULTS.md had: 0.60)
RATIO_TARGET = 0.60
METRICS_COST_TARGET = 2.0  # % of drain throughput
SCRAPE_INTERVAL_S = 1.0


def private_stack(data_dir: Path) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOM_")}
    env.update(ECOM_DATA_DIR=str(data_dir), ECOM_PG_PORT=str(free_port()),
               ECOM_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    settings, _ = up(Settings.from_env(env))
    return settings


def fill_backlog(settings: Settings, days: int, per_day: int) -> dict:
    end = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    manifest = settings.data_dir / "bench-backlog.json"
    subprocess.run(
        [sys.executable, "-m", "ecom_app.cli", "simulate", "backfill", "--days", str(days),
         "--events-per-day", str(per_day), "--end-date", end, "--seed", "4242",
         "--bad-rate", "0.01", "--manifest", str(manifest), "--no-progress"],
        cwd=REPO, env=settings.subprocess_env(), check=True, stdout=subprocess.DEVNULL)
    return json.loads(manifest.read_text())


def _ticks(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime ticks) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12])


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each root process and its live descendants."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _ticks(int(entry))) is not None:
            procs[int(entry)] = info
    out = dict.fromkeys(roots, 0.0)
    owner = {pid: name for name, pid in roots.items()}
    for pid, (_, ticks) in procs.items():
        node, hops = pid, 0
        while node not in owner and node in procs and hops < 20:
            node, hops = procs[node][0], hops + 1
        if node in owner:
            out[owner[node]] += ticks / os.sysconf("SC_CLK_TCK")
    return out


def cpu_roots(settings: Settings) -> dict[str, int]:
    """Driver (this process, with Spark's JVM and Python workers below it: in local mode the
    executors too), the standalone cluster's daemons and executors, PostgreSQL, broker."""
    roots = {"driver + Spark": os.getpid()}
    for name, pid in cluster.worker_pids(settings).items():
        roots[f"Spark {name}"] = pid
    pg_pid = postgres.cluster_dir(settings) / "postmaster.pid"
    if pg_pid.is_file():
        roots["PostgreSQL"] = int(pg_pid.read_text().split()[0])
    if (broker_pid := broker.running_pid(settings)) is not None:
        roots["broker"] = broker_pid
    return roots


def drain(job: IngestJob, messages: int) -> dict:
    lines: list[str] = []
    job.log = lines.append
    roots = cpu_roots(job.settings)
    cpu_before = cpu_seconds(roots)
    after_first: list[dict[str, float]] = []

    def snapshot_after_first_batch() -> None:  # CPU without the warm-up batch
        while not job.batch_log and not done.is_set():
            time.sleep(0.01)
        after_first.append(cpu_seconds(roots))

    done = threading.Event()
    watcher = threading.Thread(target=snapshot_after_first_batch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    job.wait([job.start_events(available_now=True)])
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()
    cpu_after = cpu_seconds(roots)
    cpu_us = {name: round((cpu_after[name] - cpu_before[name]) / messages * 1e6, 1)
              for name in roots}
    stats = job.stats
    assert stats.rows == messages, f"drained {stats.rows} of {messages} messages"
    per_batch = [(r.rows_read, s, r.timings) for r, s in job.batch_log]
    first_s = per_batch[0][1]
    steady_n = messages - per_batch[0][0]
    steady_us = {name: round((cpu_after[name] - after_first[0][name]) / steady_n * 1e6, 1)
                 for name in roots} if steady_n and after_first else {}
    if len(per_batch) < 3:
        print("  (fewer than 3 batches: raise the backlog or lower --max-rows-per-batch for a "
              "steady-state figure)")
    steady_rows = sum(r for r, _, _ in per_batch[1:])
    steady_s = sum(s for _, s, _ in per_batch[1:])
    phases: dict[str, float] = {}
    for _, _, timings in per_batch:
        for k, v in timings.items():
            phases[k] = phases.get(k, 0.0) + v
    return {
        "messages": stats.rows, "landed": stats.valid, "rejected": stats.rejected,
        "batches": stats.batches, "seconds": round(elapsed, 2),
        "events_per_s": round(stats.rows / elapsed),
        "steady_events_per_s": round(steady_rows / steady_s) if steady_s else 0,
        "first_batch_seconds": round(first_s, 2),
        "phase_seconds": {k: round(v, 2) for k, v in sorted(phases.items(),
                                                            key=lambda kv: -kv[1])},
        "cpu_us_per_event": cpu_us,
        "steady_cpu_us_per_event": steady_us,
        "two_core_ceiling_events_per_s": round(2e6 / sum(steady_us.values() or cpu_us.values())),
    }


def raw_copy_rate(settings: Settings) -> dict:
    columns = ", ".join(RAW_COLUMNS)
    buf = io.StringIO()
    with connect(settings) as conn, conn.cursor() as cur:
        cur.copy_expert(f"copy (select {columns} from raw.raw_events) to stdout", buf)
        cur.execute("create schema if not exists bench")
        cur.execute("drop table if exists bench.raw_copy")
        cur.execute("create table bench.raw_copy (like raw.raw_events including all)")
    rows = buf.getvalue().count("\n")
    buf.seek(0)
    conn = connect(settings)
    roots = cpu_roots(settings)
    try:
        cpu_before = cpu_seconds(roots)
        with conn, conn.cursor() as cur:
            started = time.perf_counter()
            cur.copy_expert(f"copy bench.raw_copy ({columns}) from stdin", buf, size=8 << 20)
        elapsed = time.perf_counter() - started  # including the commit
        cpu_after = cpu_seconds(roots)
        with conn, conn.cursor() as cur:
            cur.execute("drop schema bench cascade")
    finally:
        conn.close()
    pg_us = (cpu_after.get("PostgreSQL", 0) - cpu_before.get("PostgreSQL", 0)) / rows * 1e6
    return {"rows": rows, "seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed),
            "postgres_cpu_us_per_row": round(pg_us, 1)}


def _valid_event(now: datetime, i: int, run: str) -> tuple[bytes, bytes]:
    user = f"bench-{run}-u{i % 5000}"
    event = {
        "event_id": str(uuid.uuid4()), "user_id": user, "session_id": f"{user}-s{i % 7}",
        "event_type": "page_view" if i % 10 else "add_to_cart",
        "event_timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "page_url": "https://shop.example.com/p/1", "user_agent": "bench/1.0",
        "ip_address": "10.0.0.1",
    }
    if i % 10 == 0:
        event.update(product_id="P00001", category="books", price=12.5, quantity=1)
    return user.encode(), json.dumps(event).encode()


def latency(settings: Settings, job: IngestJob, rate: float, seconds: float) -> dict:
    from confluent_kafka import Producer

    job.log = lambda line: None
    runner = threading.Thread(target=job.run, kwargs={"available_now": False}, daemon=True)
    runner.start()
    time.sleep(15)  # both queries started and idle
    first_window = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)

    def visible() -> int:
        with connect(settings) as conn, conn.cursor() as cur:
            cur.execute("select coalesce(sum(events), 0) from raw.realtime_metrics "
                        "where window_start >= %s", (first_window,))
            return int(cur.fetchone()[0])

    baseline = visible()
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "linger.ms": 5, "acks": "all"})
    sent_at: list[float] = []
    total = int(rate * seconds)
    run = uuid.uuid4().hex[:6]
    seen: list[tuple[float, int]] = []
    stop_polling = threading.Event()

    def poll() -> None:
        while not stop_polling.is_set():
            seen.append((time.time(), visible() - baseline))
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.time()
    for i in range(total):
        due = start + i / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        key, value = _valid_event(datetime.now(UTC), i, run)
        sent_at.append(time.time())
        producer.produce(settings.topic_events, value, key)
        producer.poll(0)
    producer.flush(30)
    produced_rate = total / (time.time() - start)
    deadline = time.time() + 120
    while (not seen or seen[-1][1] < total) and time.time() < deadline:
        time.sleep(0.2)
    stop_polling.set()
    poller.join()
    job.request_stop()
    runner.join(timeout=120)
    latencies, j = [], 0
    for k, t_sent in enumerate(sent_at):
        while j < len(seen) and seen[j][1] < k + 1:
            j += 1
        if j == len(seen):
            break
        latencies.append(seen[j][0] - t_sent)
    latencies.sort()
    if len(latencies) < total:
        print(f"  warning: only {len(latencies):,} of {total:,} events became visible")

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    return {"rate": rate, "produced_rate": round(produced_rate), "events": total,
            "visible": len(latencies), "p50_s": pct(0.50), "p95_s": pct(0.95),
            "max_s": round(latencies[-1], 2)}


@dataclass(frozen=True)
class Setup:
    """One way of running the drain: where the executors run, how many cores, who writes."""

    spark: str  # local | cluster
    cores: int
    writer: str  # driver | executors

    @property
    def label(self) -> str:
        where = (f"local[{self.cores}]" if self.spark == "local"
                 else f"cluster {self.cores}x1 core")
        return f"{where}, {self.writer} writer"

    @property
    def key(self) -> str:
        return f"{self.spark}-{self.cores}-{self.writer}"


HEADLINE = Setup("local", 2, "driver")  # the default setup, measured as before


def setups(cores: list[int], sparks: list[str], writers: list[str]) -> list[Setup]:
    """Every combination: local ones, then the cluster growing worker by worker, then the
    headline (its landed rows feed the COPY and the latency phase)."""
    order = [s for s in ("local", "cluster") if s in sparks]
    out = [Setup(sp, c, w) for sp in order for c in sorted(cores) for w in writers]
    return [*(x for x in out if x != HEADLINE), HEADLINE]


def empty_landing(settings: Settings) -> None:
    """Forget a previous drain: landing tables, ledger and the stream's checkpoint; then a
    PostgreSQL checkpoint, so no drain pays for the WAL of the one before."""
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("truncate raw.raw_events, raw.rejected_events, ops.ingest_batches")
    conn = connect(settings, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("checkpoint")
    finally:
        conn.close()
    reset_checkpoint(settings)


def drain_setup(base: Settings, setup: Setup, messages: int, max_rows: int | None,
                index: int, metrics: StreamMetrics | None = None
                ) -> tuple[dict, IngestJob | None, object]:
    """Drain the backlog once with `setup`; returns the figures (and, for the headline,
    the still-running session and job for the windows and latency phases)."""
    from ingestion.spark import build_session

    settings = base.replace(sink_writer=setup.writer)
    if setup.spark == "cluster":
        if len(cluster.worker_pids(settings)) > setup.cores:
            cluster.down(settings)
        cluster.up(settings, workers=setup.cores)
        settings = settings.replace(spark_master=cluster.master_url(settings))
    else:
        cluster.down(settings)  # no idle daemons next to a local drain
        settings = settings.replace(spark_master=f"local[{setup.cores}]")
    if setup != HEADLINE:  # its own processed topic: the windows phase reads the headline's
        settings = settings.replace(topic_processed=f"bench-processed-{index}")
        ensure_topics(settings)
    empty_landing(settings)
    t0 = time.perf_counter()
    spark = build_session(settings, f"ecom-bench-ingest-{setup.key}")
    session_s = time.perf_counter() - t0
    job = IngestJob(settings, spark, max_rows=max_rows, metrics=metrics)
    job.listen()
    d = drain(job, messages)
    d.update(setup=setup.label, spark=setup.spark, cores=setup.cores, writer=setup.writer,
             session_seconds=round(session_s, 1), load_average=round(os.getloadavg()[0], 2))
    print(f"drain, {setup.label}: {d['messages']:,} messages in {d['seconds']} s = "
          f"{d['events_per_s']:,} events/s ({d['batches']} batches; without the first "
          f"{d['first_batch_seconds']} s batch: {d['steady_events_per_s']:,}/s; session "
          f"{session_s:.1f} s; load average {d['load_average']})")
    print(f"  time per phase (s): {d['phase_seconds']}")
    steady = d["steady_cpu_us_per_event"]
    print(f"  CPU per event (us): {d['cpu_us_per_event']}; without the first batch "
          f"{steady}, total {sum(steady.values()):.1f} us: 2 idle cores fit at most "
          f"{d['two_core_ceiling_events_per_s']:,} events/s")
    if setup == HEADLINE:
        return d, job, spark
    job.close()
    spark.stop()
    return d, None, None


#: Prometheus' part: GET /metrics every interval, from its own process as Prometheus would
SCRAPE_LOOP = """
import sys, time, urllib.request
url, interval, count = sys.argv[1], float(sys.argv[2]), 0
try:
    while True:
        time.sleep(interval)
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
        count += 1
except KeyboardInterrupt:
    print(count, flush=True)
"""


class Scraper:
    """Serves a job's metrics (in this process, the stream's driver) and scrapes them every
    SCRAPE_INTERVAL_S from a separate process, as Prometheus would: the scraping client's
    own work is not the stream's cost, serving the scrape is."""

    def __init__(self, metrics: StreamMetrics) -> None:
        self.metrics = metrics
        self.server = metrics.serve("127.0.0.1", free_port())
        self.scrapes = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-c", SCRAPE_LOOP, self.server.url, str(SCRAPE_INTERVAL_S)],
            stdout=subprocess.PIPE, text=True)

    def close(self) -> None:
        self._proc.send_signal(signal.SIGINT)
        out, _ = self._proc.communicate(timeout=30)
        if self._proc.returncode not in (0, -signal.SIGINT):
            raise RuntimeError(f"the scrape loop failed (exit {self._proc.returncode})")
        counts = out.split()
        self.scrapes = int(counts[-1]) if counts else 0
        self.metrics.close()


def metrics_cost(settings: Settings, spark: object, messages: int, pairs: int,
                 max_rows: int | None) -> dict:
    """Drain the backlog again `pairs` times each way from an emptied raw, in ABBA order
    (off, on, on, off, ...: a drift over the run, such as a growing table or a warming
    cache, falls on both sides alike): events/s without and with metrics (mean of each),
    the cost in %."""
    rates: dict[str, list[int]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}  # us per event, all processes
    scrapes = 0
    for pair in range(pairs):
        for mode in ("off", "on") if pair % 2 == 0 else ("on", "off"):
            empty_landing(settings)
            metrics = StreamMetrics(settings) if mode == "on" else None
            scraper = Scraper(metrics) if metrics is not None else None
            job = IngestJob(settings, spark, max_rows=max_rows, metrics=metrics)
            job.listen()
            try:
                figures = drain(job, messages)
                rates[mode].append(figures["events_per_s"])
                cpu[mode].append(round(sum(figures["cpu_us_per_event"].values()), 1))
            finally:
                job.close()
                if scraper is not None:
                    scraper.close()
                    scrapes += scraper.scrapes
            print(f"  metrics {mode:>3}: {rates[mode][-1]:,} events/s, "
                  f"{cpu[mode][-1]} us CPU per event")

    def mean(values: list[float] | list[int]) -> float:
        return sum(values) / len(values)

    off, on = mean(rates["off"]), mean(rates["on"])
    cpu_off, cpu_on = mean(cpu["off"]), mean(cpu["on"])
    return {"pairs": pairs, "off_events_per_s": rates["off"], "on_events_per_s": rates["on"],
            "off_cpu_us_per_event": cpu["off"], "on_cpu_us_per_event": cpu["on"],
            "scrapes": scrapes, "scrape_interval_s": SCRAPE_INTERVAL_S,
            "cost_percent": round((off - on) / off * 100, 2),
            "cpu_cost_percent": round((cpu_on - cpu_off) / cpu_off * 100, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=3, help="backlog days (default 3)")
    parser.add_argument("--events-per-day", type=int, default=200_000,
                        help="backlog events per day (default 200000)")
    parser.add_argument("--max-rows-per-batch", type=int, default=None,
                        help="micro-batch cap (default ECOM_MAX_ROWS_PER_BATCH)")
    parser.add_argument("--cores", default="1,2",
                        help="Spark cores to drain with, side by side (default 1,2)")
    parser.add_argument("--spark", default="local,cluster",
                        help="local (local[N]) and/or cluster (N one-core workers); "
                             "default both")
    parser.add_argument("--writers", default="driver,executors",
                        help="ECOM_SINK_WRITER values to drain with (default both)")
    parser.add_argument("--rate", type=float, default=2000.0, help="latency phase events/s")
    parser.add_argument("--latency-seconds", type=float, default=60.0,
                        help="how long to produce in the latency phase (default 60)")
    parser.add_argument("--metrics", action="store_true",
                        help="serve and scrape the stream's metrics in phases 1-3 too")
    parser.add_argument("--metrics-pairs", type=int, default=2,
                        help="phase 4: drains without and with metrics, each (0 = skip)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    plan = setups([int(c) for c in args.cores.split(",")], args.spark.split(","),
                  args.writers.split(","))

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (other work "
          "on the machine lowers every figure)")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        settings = private_stack(Path(tmp)).replace(spark_master_port=free_port(),
                                                    spark_master_ui_port=free_port())
        job: IngestJob | None = None
        try:
            t0 = time.perf_counter()
            manifest = fill_backlog(settings, args.days, args.events_per_day)
            print(f"backlog: {manifest['messages_acknowledged']:,} messages "
                  f"({manifest['valid_events']:,} valid) simulated in "
                  f"{time.perf_counter() - t0:.1f} s")
            drains = []
            spark = None
            scraper = Scraper(StreamMetrics(settings)) if args.metrics else None
            for index, setup in enumerate(plan):
                metrics = scraper.metrics if scraper and setup == HEADLINE else None
                d, job, spark = drain_setup(settings, setup, manifest["messages_acknowledged"],
                                            args.max_rows_per_batch, index, metrics)
                drains.append(d)
            cluster.down(settings)
            results["drains"] = drains
            results["drain"] = drains[-1]
            assert job is not None and spark is not None
            t0 = time.perf_counter()
            job.wait([job.start_windows(available_now=True)])
            print(f"windows catch-up over the backlog: {time.perf_counter() - t0:.1f} s")
            job.close()

            c = raw_copy_rate(settings)
            results["raw_copy"] = c
            for d in drains:
                d["drain_over_copy"] = round(d["events_per_s"] / c["rows_per_s"], 2)
            results["drain_over_copy"] = drains[-1]["drain_over_copy"]
            print(f"raw COPY of the same {c['rows']:,} rows into a table like raw_events: "
                  f"{c['seconds']} s = {c['rows_per_s']:,} rows/s "
                  f"({c['postgres_cpu_us_per_row']} us PostgreSQL CPU per row)")
            print("drain side by side (events/s, ratio to the bare COPY):")
            for d in drains:
                print(f"  {d['setup']:<34} {d['events_per_s']:>8,}/s  "
                      f"{d['drain_over_copy']:.2f}  (load {d['load_average']})")

            headline_settings = settings.replace(spark_master="local[2]")
            job = IngestJob(headline_settings, spark,
                            metrics=scraper.metrics if scraper else None)
            lat = latency(settings, job, args.rate, args.latency_seconds)
            if scraper is not None:
                scraper.close()
            results["latency"] = lat
            print(f"latency at {lat['produced_rate']:,} events/s for {args.latency_seconds:.0f} s:"
                  f" p50 {lat['p50_s']} s, p95 {lat['p95_s']} s, max {lat['max_s']} s "
                  f"({lat['visible']:,}/{lat['events']:,} visible)")
            if args.metrics_pairs > 0:
                # the topic now holds the backlog and the latency phase's events
                m = metrics_cost(headline_settings, spark, manifest["messages_acknowledged"]
                                 + lat["events"], args.metrics_pairs, args.max_rows_per_batch)
                results["metrics"] = m
                print(f"metrics cost: {m['cost_percent']:.2f}% of drain throughput (without "
                      f"{m['off_events_per_s']}, with {m['on_events_per_s']} events/s), "
                      f"{m['cpu_cost_percent']:.2f}% more CPU per event (without "
                      f"{m['off_cpu_us_per_event']}, with {m['on_cpu_us_per_event']} us); "
                      f"{m['scrapes']} scrapes at {SCRAPE_INTERVAL_S:g} s")
            spark.stop()  # type: ignore[attr-defined]
        finally:
            if job is not None:
                job.close()
            cluster.down(settings)
            broker.stop(settings)
            postgres.destroy(settings)
    headline = results["drain"]
    drain_ok = headline["events_per_s"] >= DRAIN_TARGET  # type: ignore[index]
    p95_ok = results["latency"]["p95_s"] <= P95_TARGET  # type: ignore[index]
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")
    print(f"drain target {DRAIN_TARGET:,}/s ({HEADLINE.label}): "
          f"{'met' if drain_ok else 'MISSED'} (CPU-bound ceiling on 2 idle cores: "
          f"{headline['two_core_ceiling_events_per_s']:,}/s); "  # type: ignore[index]
          f"p95 target {P95_TARGET:.0f} s: {'met' if p95_ok else 'MISSED'}; ratio drain / COPY "
          f"target {RATIO_TARGET}: "
          f"{'met' if results['drain_over_copy'] >= RATIO_TARGET else 'MISSED'}")  # type: ignore[operator]
    if "metrics" in results:
        cost = results["metrics"]["cost_percent"]  # type: ignore[index]
        print(f"metrics cost target <= {METRICS_COST_TARGET:g}%: "
              f"{'met' if cost <= METRICS_COST_TARGET else 'MISSED'} ({cost:.2f}%)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
