"""`ecom metrics prometheus`: Debian's Prometheus binary against the embedded stack.

The configuration is generated from the settings (the exporter's and the stream's ports,
the same rules file as docker compose: `monitoring/prometheus/rules.yml`) into
`<data dir>/prometheus/`, which also holds its time series. No Alertmanager runs locally:
the firing alerts are on Prometheus' /alerts page, and the failures that need a person
already reach the webhook from the pipeline itself (`ecom.notifications`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ecom.config import REPO_ROOT, Settings
from ecom.errors import UserError

RULES_FILE = REPO_ROOT / "monitoring" / "prometheus" / "rules.yml"
STREAM_JOB = "ecom-stream"
EXPORTER_JOB = "ecom-exporter"


def home(settings: Settings) -> Path:
    return settings.data_dir / "prometheus"


def prometheus_config(settings: Settings, *, interval_s: float = 15.0,
                      rules: Path = RULES_FILE) -> dict[str, Any]:
    """prometheus.yml for the embedded stack (jobs named as in docker compose)."""
    host = "127.0.0.1" if settings.metrics_host in {"0.0.0.0", ""} else settings.metrics_host
    jobs = [{"job_name": EXPORTER_JOB,
             "static_configs": [{"targets": [f"{host}:{settings.exporter_port}"]}]}]
    if settings.stream_metrics_port:
        jobs.append({"job_name": STREAM_JOB,
                     "static_configs": [{"targets": [f"{host}:{settings.stream_metrics_port}"]}]})
    jobs.append({"job_name": "prometheus", "static_configs": [
        {"targets": [f"127.0.0.1:{settings.prometheus_port}"]}]})
    interval = f"{interval_s:g}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "scrape_timeout": f"{min(interval_s, 10.0):g}s"},
        "rule_files": [str(rules)],
        "scrape_configs": jobs,
    }


def binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus"
                                           if Path("/usr/bin/prometheus").exists() else None)
    if not found:
        raise UserError("The prometheus binary was not found: install Debian's `prometheus` "
                        "package (`make system-deps` does), or use `docker compose up`.")
    return found


def write_config(settings: Settings, interval_s: float = 15.0) -> Path:
    root = home(settings)
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "prometheus.yml"
    path.write_text(yaml.safe_dump(prometheus_config(settings, interval_s=interval_s),
                                   sort_keys=False))
    return path


def command(settings: Settings, config: Path) -> list[str]:
    return [binary(), f"--config.file={config}",
            f"--storage.tsdb.path={home(settings) / 'data'}",
            f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
            "--storage.tsdb.retention.time=7d"]


def start(settings: Settings, interval_s: float = 15.0) -> subprocess.Popen[bytes]:
    """Prometheus as a child process, logging to `<data dir>/prometheus/prometheus.log`."""
    config = write_config(settings, interval_s)
    log = open(home(settings) / "prometheus.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(command(settings, config), stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
    finally:
        log.close()
