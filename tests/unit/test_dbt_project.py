"""The dbt project's conventions, checked on the manifest `dbt parse` writes without a database.

Layers, schemas and tags (Cosmos selects groups by tag), a primary-key test on every model,
contracts on the public marts, freshness on every source, descriptions, exposures, the
overview page and the unit tests the issue asks for.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ecom.config import REPO_ROOT

PROJECT = REPO_ROOT / "dbt_project"
#: the warehouse's business marts (tables the daily DAG rebuilds; its exposure reads them)
BUSINESS_MARTS = {"processed_events", "user_sessions", "daily_sessions", "daily_aggregations",
                  "product_analytics", "customer_rfm_segments", "product_pairs"}
#: views the dashboards read live: orders, the stream's windows, the ops and quality sources
LIVE_MARTS = {"order_lines", "realtime_windows", "pipeline_task_runs", "pipeline_runs",
              "ingestion_batches", "ingestion_hourly", "ingestion_partition_offsets",
              "dead_letters",
              "quality_expectation_results", "quality_gate_runs", "source_freshness"}
MARTS = BUSINESS_MARTS | LIVE_MARTS
DASHBOARD_URL = "http://127.0.0.1:8501/"
LAYERS = {  # folder -> (schema, tag)
    "staging": ("analytics_staging", "staging"),
    "intermediate": ("analytics_intermediate", "intermediate"),
    "marts": ("analytics", "marts"),
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    target = tmp_path_factory.mktemp("dbt-parse")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(target)}  # no ECOM_* and no database
    proc = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/dbt"), "parse", "--project-dir", str(PROJECT),
         "--profiles-dir", str(PROJECT), "--target-path", str(target), "--log-path",
         str(target)], cwd=REPO_ROOT, env=env, text=True, capture_output=True, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deprecat" not in proc.stdout.lower(), proc.stdout
    return json.loads(Path(target, "manifest.json").read_text())


def _models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def _layer(node: dict[str, Any]) -> str:
    return node["original_file_path"].split("/")[1]


def test_layers_schemas_tags_and_names(manifest: dict[str, Any]) -> None:
    models = _models(manifest)
    assert set(models) >= MARTS
    for name, node in models.items():
        schema, tag = LAYERS[_layer(node)]
        assert node["schema"] == schema, name
        assert tag in node["tags"], name
        prefix = {"staging": "stg_", "intermediate": "int_", "marts": ""}[_layer(node)]
        assert name.startswith(prefix), name
    assert {n for n, node in models.items() if _layer(node) == "marts"} == MARTS


def test_only_staging_reads_sources_one_each(manifest: dict[str, Any]) -> None:
    for name, node in _models(manifest).items():
        sources = [d for d in node["depends_on"]["nodes"] if d.startswith("source.")]
        if _layer(node) == "staging":
            assert len(sources) == 1, name
            source = manifest["sources"][sources[0]]
            assert name == f"stg_{source['source_name']}__{source['name'].removeprefix('raw_')}"
        else:
            assert not sources, name


def test_every_model_has_a_primary_key_test(manifest: dict[str, Any]) -> None:
    keyed: set[str] = set()
    for node in manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if meta.get("name") in {"unique", "unique_combination_of_columns"}:
            keyed.update(node["depends_on"]["nodes"])
    missing = {n for n, node in _models(manifest).items() if node["unique_id"] not in keyed}
    assert not missing


def test_marts_have_enforced_contracts_with_typed_columns(manifest: dict[str, Any]) -> None:
    for name in MARTS:
        node = _models(manifest)[name]
        assert node["contract"]["enforced"], name
        assert all(c["data_type"] for c in node["columns"].values()), name


def test_daily_aggregations_keeps_the_design_schema(manifest: dict[str, Any]) -> None:
    columns = _models(manifest)["daily_aggregations"]["columns"]
    assert {k: v["data_type"] for k, v in columns.items()} == {
        "id": "uuid", "date": "date", "category": "varchar(100)", "event_type": "varchar(50)",
        "total_events": "bigint", "total_revenue": "numeric(15, 2)", "unique_users": "bigint",
        "unique_sessions": "bigint", "conversion_rate": "numeric(5, 4)",
        "avg_order_value": "numeric(10, 2)", "top_products": "jsonb",
        "created_at": "timestamp with time zone", "updated_at": "timestamp with time zone",
    }


def test_everything_is_described(manifest: dict[str, Any]) -> None:
    for name, node in _models(manifest).items():
        assert node["description"].strip(), name
        assert node["columns"], name
        for column, spec in node["columns"].items():
            assert spec["description"].strip(), f"{name}.{column}"
    for source in manifest["sources"].values():
        assert source["description"].strip(), source["unique_id"]
    assert "doc.ecom_warehouse.__overview__" in manifest["docs"]


def test_every_source_has_freshness(manifest: dict[str, Any]) -> None:
    for source in manifest["sources"].values():
        freshness = source["freshness"] or {}
        assert (freshness.get("warn_after") or {}).get("count"), source["unique_id"]
        assert source["loaded_at_field"] or source.get("loaded_at_query"), source["unique_id"]


def test_exposures_for_the_dag_and_dashboards(manifest: dict[str, Any]) -> None:
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    dag = exposures["ecommerce_analytics_pipeline"]
    assert {d.split(".")[-1] for d in dag["depends_on"]["nodes"]} == BUSINESS_MARTS
    dashboards = {name: e for name, e in exposures.items() if e["type"] == "dashboard"}
    # one per page, at the page's URL on the default port (tests/unit/test_dashboards.py
    # holds each to the marts its queries read)
    assert {e["url"].removeprefix(DASHBOARD_URL) for e in dashboards.values()} == {
        "business", "realtime", "operations", "quality"}
    read = {d.split(".")[-1] for e in dashboards.values() for d in e["depends_on"]["nodes"]}
    assert read >= LIVE_MARTS, "every live mart is there for a dashboard"


def test_live_marts_are_views_with_enforced_contracts(manifest: dict[str, Any]) -> None:
    models = _models(manifest)
    for name in LIVE_MARTS:
        node = models[name]
        assert node["config"]["materialized"] == "view", name
        # PostgreSQL enforces no constraint on a view: dbt would warn about any
        assert not node["constraints"] and not any(
            c["constraints"] for c in node["columns"].values()), name
    assert all(models[n]["config"]["materialized"] in {"table", "incremental"}
               for n in BUSINESS_MARTS)


def test_unit_tests_cover_sessionisation_conversion_and_top_products(
    manifest: dict[str, Any],
) -> None:
    names = {u["name"]: u["model"] for u in manifest["unit_tests"].values()}
    assert names["test_int_events_sessionized_orders_and_flags_sessions"] == \
        "int_events_sessionized"
    assert names["test_daily_aggregations_conversion_rate_and_order_value"] == \
        "daily_aggregations"
    assert names["test_daily_aggregations_top_products"] == "daily_aggregations"


def test_the_marts_are_public_and_the_building_blocks_are_not(
        manifest: dict[str, Any]) -> None:
    models = _models(manifest)
    assert {name for name, node in models.items() if node["access"] == "public"} == MARTS
    exposed = {dep.split(".")[-1] for exposure in manifest["exposures"].values()
               for dep in exposure["depends_on"]["nodes"]}
    assert exposed <= MARTS, "exposures read public marts only"


def test_every_macro_of_the_project_is_documented(manifest: dict[str, Any]) -> None:
    own = {m["name"]: m for m in manifest["macros"].values()
           if m["package_name"] == "ecom_warehouse"}
    assert own, "the project defines macros"
    undocumented = sorted(name for name, m in own.items() if not m["description"].strip())
    assert not undocumented, f"describe these in a _<dir>__macros.yml: {undocumented}"
    for folder in {Path(m["original_file_path"]).parent for m in own.values()}:
        ymls = list((PROJECT / folder).glob("_*__macros.yml"))
        assert len(ymls) == 1, f"{folder}: one _<dir>__macros.yml"
