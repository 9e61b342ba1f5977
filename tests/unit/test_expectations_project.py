"""The committed GE project (expectations/gx) matches the suites in code; suites cover the
issue's checks; every day query is bound to the logical date."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecom.config import REPO_ROOT, Settings
from ecom.events import EVENT_TYPES, REQUIRED_FIELDS
from expectations.project import LAYERS, close_context, gx_dsn, open_context, sync_layer
from expectations.suites.specs import LOGICAL_DAY

GX = REPO_ROOT / "expectations" / "gx"


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gx-project")
    shutil.copytree(GX, root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    return root


def test_committed_project_is_in_sync_with_the_code(project_copy: Path) -> None:
    before = {p: p.read_bytes() for p in (project_copy / "gx").rglob("*") if p.is_file()}
    context = open_context(Settings(), None, project_copy)
    try:
        for layer in LAYERS:
            assert sync_layer(context, layer).changes == [], (
                f"expectations/gx is stale for {layer}: run a gate once and commit the result")
    finally:
        close_context(context)
    after = {p: p.read_bytes() for p in (project_copy / "gx").rglob("*")
             if p.is_file() and "uncommitted" not in p.parts}
    assert after == {p: b for p, b in before.items() if "uncommitted" not in p.parts}


def test_no_secret_in_the_committed_project() -> None:
    config = (GX / "great_expectations.yml").read_text()
    assert "connection_string: ${ECOM_GX_WAREHOUSE_DSN}" in config
    assert "postgresql" not in config and "password" not in config.lower()


def test_dsn_pins_utc_and_the_logical_date() -> None:
    from datetime import date

    settings = Settings(pg_transformer_password="s3cret")
    dsn = gx_dsn(settings, date(2026, 1, 10))
    assert dsn.startswith("postgresql+psycopg2://transformer:s3cret@")
    assert "options=-c%20timezone%3DUTC%20-c%20ecom.logical_date%3D2026-01-10" in dsn


def _types(layer: str) -> dict[str, set[tuple[str, str | None]]]:
    return {
        spec.suite_name: {(e.expectation_type, getattr(e, "column", None))
                          for e in spec.build_suite().expectations}
        for spec in LAYERS[layer]
    }


def test_raw_suites_cover_completeness_formats_sets_ranges_freshness_volume_rejects() -> None:
    suites = _types("raw")
    events = suites["raw_events"]
    for name in REQUIRED_FIELDS:
        assert ("expect_column_values_to_not_be_null", name) in events
    assert ("expect_column_values_to_match_like_pattern", "sent_event_id") in events
    assert ("expect_column_values_to_match_like_pattern_list", "sent_event_timestamp") in events
    assert ("expect_column_values_to_match_regex_list", "ip_address") in events
    assert ("expect_column_values_to_be_in_set", "event_type") in events
    assert ("expect_column_values_to_be_between", "price") in events
    assert ("expect_column_values_to_be_between", "quantity") in events
    assert ("expect_table_row_count_to_be_between", None) in events
    assert suites["raw_feed"] == {("expect_column_max_to_be_between", "reject_ratio"),
                                  ("expect_column_max_to_be_between", "newest_ingested_at")}
    in_set = next(e for e in LAYERS["raw"][0].build_suite().expectations
                  if e.expectation_type == "expect_column_values_to_be_in_set")
    assert tuple(in_set.value_set) == EVENT_TYPES


def test_staging_and_marts_suites_cover_grain_and_business_rules() -> None:
    assert ("expect_column_values_to_be_unique", "event_id") in _types("staging")["stg_events"]
    marts = _types("marts")
    assert ("expect_compound_columns_to_be_unique", None) in marts["daily_aggregations"]
    assert ("expect_column_values_to_be_between", "conversion_rate") in marts[
        "daily_aggregations"]
    assert ("expect_column_values_to_be_between", "total_revenue") in marts["daily_aggregations"]
    assert ("unexpected_rows_expectation", None) in marts["daily_aggregations"]
    assert ("expect_column_pair_values_a_to_be_greater_than_b", None) in marts["user_sessions"]
    assert ("expect_compound_columns_to_be_unique", None) in marts["product_analytics"]


def test_every_asset_reads_only_the_logical_day() -> None:
    for specs in LAYERS.values():
        for spec in specs:
            assert spec.asset.query.lower().startswith("select")
            assert LOGICAL_DAY in spec.asset.query, spec.asset.name
