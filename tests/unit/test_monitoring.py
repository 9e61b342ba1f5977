"""The monitoring configuration as code: alert rules, their unit tests, the Prometheus and
Grafana files docker compose mounts, all held to the metrics the project really exposes.

- `promtool check rules` / `check config` / `test rules` (Debian's `prometheus` package,
  a system dependency `make setup` installs: a missing promtool fails, never skips);
- every `ecom_*` name in the rules, the rules' tests and the dashboard is a metric that
  `ingestion.metrics` or the warehouse exporter exposes;
- compose: Prometheus scrapes the services and ports that serve the metrics, with the same
  job names as `ecom metrics prometheus`; Grafana's provisioning points at files that exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecom.config import REPO_ROOT, Settings
from ecom.stack.postgres import PRELOAD_LIBRARIES, SERVER_SETTINGS
from ecom_app.metrics import local_prometheus
from ecom_app.metrics.exporter import QUERIES, Readings, warehouse_families
from ingestion.metrics import StreamMetrics
from tests.unit.test_docker_compose import ecom_invocations, published

MONITORING = REPO_ROOT / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
RULES_TESTS = MONITORING / "prometheus" / "rules.test.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
PROVISIONING = MONITORING / "grafana" / "provisioning"
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
#: names Prometheus itself provides
BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
METRIC_NAME = re.compile(r"\b(ecom_[a-z0-9_]+)\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(binary).exists(), (
        "promtool is missing: install Debian's `prometheus` package (`make system-deps`)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def sample_readings() -> Readings:
    """One row for every query, so every family of the exporter has a sample."""
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    rows: dict[str, list[tuple[Any, ...]]] = {
        "gates": [("raw", date(2026, 3, 1), 2, 20, now)],
        "freshness": [("raw_events", now, now)],
        "reject_ratio": [("1h", 1, 100)],
        "pipeline": [(date(2026, 3, 1), now, now, 0, 0, True, 40)],
        "pipeline_success": [(date(2026, 3, 1), now)],
        "marts": [("daily_aggregations", 120)],
        "database": [(1000, 1, 3)],
        "statements": [("42", "loader", 7, 1.5, 0.2, 10, "select 1")],
        "notifications": [("quality_gate", "sent", 1)],
    }
    assert set(rows) == set(QUERIES)
    return Readings(pg_up=True, rows=rows, kafka_topics={"ecommerce-events": 3})


def exposed_names() -> set[str]:
    """Every series name the stream and the exporter can expose (counters with _total,
    histograms with _bucket/_sum/_count)."""
    names = set(BUILTIN)
    stream = StreamMetrics(Settings(kafka_bootstrap_servers="127.0.0.1:9"))
    families = list(stream.registry.collect())
    families += warehouse_families(sample_readings(), Settings(), 0.0)
    for family in families:
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def referenced(text: str) -> set[str]:
    """`ecom_*` names outside comment lines."""
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    return set(METRIC_NAME.findall(code))


# ---- promtool ----------------------------------------------------------------------------
def test_rules_pass_promtool_check() -> None:
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rules_pass_their_promtool_unit_tests() -> None:
    proc = promtool("test", "rules", str(RULES_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"]
              for r in g["rules"] if "alert" in r}
    fired = {case["alertname"] for test in yaml.safe_load(RULES_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts == fired
    assert {"IngestionStalled", "SourceFreshnessExceeded", "IngestionRejectRatioHigh",
            "QualityGateFailed", "DailyPipelineFailed", "DailyPipelineNotFinished",
            "StackServiceDown"} <= alerts


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    proc = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_local_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    settings = Settings(stream_metrics_port=19464, exporter_port=19188)
    config = local_prometheus.prometheus_config(settings, interval_s=5)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    proc = promtool("check", "config", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in config["scrape_configs"]}
    assert targets[local_prometheus.EXPORTER_JOB] == ["127.0.0.1:19188"]
    assert targets[local_prometheus.STREAM_JOB] == ["127.0.0.1:19464"]
    assert local_prometheus.STREAM_JOB not in {
        j["job_name"] for j in local_prometheus.prometheus_config(Settings())["scrape_configs"]}


# ---- only metrics that exist ---------------------------------------------------------------
def test_rules_and_their_tests_name_only_exposed_metrics() -> None:
    names = exposed_names()
    for path in (RULES, RULES_TESTS):
        used = referenced(path.read_text())
        assert used, path
        assert used <= names, f"{path.name}: not exposed: {sorted(used - names)}"


def test_dashboard_loads_and_queries_only_exposed_metrics() -> None:
    names = exposed_names()
    boards = sorted(DASHBOARDS.glob("*.json"))
    assert boards
    for board in boards:
        dashboard = json.loads(board.read_text())
        assert dashboard["uid"] and dashboard["title"]
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        assert len(exprs) >= 10, board.name
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        used = set().union(*(referenced(e) for e in exprs))
        assert used <= names, f"{board.name}: not exposed: {sorted(used - names)}"
        # every metric of the stream and the warehouse appears somewhere on the board
        core = {"ecom_ingest_consumer_lag_records", "ecom_ingest_rows_rejected_total",
                "ecom_quality_gate_success", "ecom_source_freshness_seconds",
                "ecom_reject_ratio", "ecom_pipeline_last_run_state", "ecom_mart_rows",
                "ecom_pg_top_statement_exec_seconds"}
        assert core <= used, sorted(core - used)


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    grafana = COMPOSE["services"]["grafana"]
    mounts = dict(v.rsplit(":", 2)[:2] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    for source in mounts:
        assert (REPO_ROOT / source).is_dir(), source
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "ecom.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert mounts["./monitoring/grafana/dashboards"] == path
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    datasource = source["datasources"][0]
    assert datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).name).is_file() and home.startswith(path)


# ---- compose wiring ------------------------------------------------------------------------
def test_compose_prometheus_scrapes_the_services_that_serve_metrics() -> None:
    services = COMPOSE["services"]
    prometheus = services["prometheus"]
    assert "./monitoring/prometheus:/etc/prometheus/ecom:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/ecom/prometheus.yml" in prometheus["command"]
    assert published(prometheus, 9090)[0] == "127.0.0.1"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["rules.yml"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in config["scrape_configs"]}
    stream_port = services["spark-ingest"]["environment"]["ECOM_STREAM_METRICS_PORT"]
    assert targets[local_prometheus.STREAM_JOB] == [f"spark-ingest:{stream_port}"]
    exporter = ecom_invocations(services["metrics-exporter"]["command"])[0]
    assert exporter[:2] == ["metrics", "serve"]
    port = exporter[exporter.index("--port") + 1]
    assert targets[local_prometheus.EXPORTER_JOB] == [f"metrics-exporter:{port}"]
    assert port in " ".join(services["metrics-exporter"]["healthcheck"]["test"])
    assert COMPOSE["x-ecom-env"]["ECOM_METRICS_HOST"] == "0.0.0.0"


def test_postgres_preloads_pg_stat_statements_without_utility_commands() -> None:
    """Embedded and compose alike (utility commands keep their literals, passwords too)."""
    assert "pg_stat_statements" in PRELOAD_LIBRARIES
    assert "pg_stat_statements.track_utility = off" in SERVER_SETTINGS
    command = COMPOSE["services"]["postgres"]["command"]
    settings = dict(arg.split("=", 1) for arg in command if "=" in arg)
    assert "pg_stat_statements" in settings["shared_preload_libraries"].split(",")
    assert settings["pg_stat_statements.track_utility"] == "off"


@pytest.mark.parametrize("path", [RULES, RULES_TESTS, PROMETHEUS_CONFIG,
                                  *PROVISIONING.rglob("*.yml")])
def test_monitoring_yaml_parses(path: Path) -> None:
    assert yaml.safe_load(path.read_text())
