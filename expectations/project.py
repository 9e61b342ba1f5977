"""The file-mode GE project in `expectations/gx`, kept in sync with the suites in code.

`great_expectations.yml` names the warehouse connection as `${ECOM_GX_WAREHOUSE_DSN}`;
`open_context` resolves it in memory (GE's `runtime_environment`) from `Settings`, so no
password is written to disk or to the process environment. The resolved connection also
carries the run's logical date (session setting `ecom.logical_date`, see
`expectations.suites.specs`), so a context is opened per run. `sync_layer` creates or
updates the layer's assets, batch definitions, suites, validation definitions and
checkpoint, writing only what differs from the code, so committed files stay stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ecom.config import REPO_ROOT, Settings
from ecom.errors import UserError
from expectations.suites import marts, raw, staging
from expectations.suites.specs import LOGICAL_DATE_SETTING, AssetSpec, ValidationSpec

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext

#: GE's project root (GE keeps its files in `<root>/gx`)
DEFAULT_PROJECT_ROOT = REPO_ROOT / "expectations"
DATASOURCE = "warehouse"
DSN_VARIABLE = "ECOM_GX_WAREHOUSE_DSN"
BATCH_DEFINITION = "logical_day"
#: GE reads the warehouse as the transformer role: raw and ops readable, analytics owned
GX_ROLE = "transformer"
#: how many unexpected values each failed expectation reports (the one-line summaries and
#: Data Docs show them; the query runs anyway, so more would not cost more)
PARTIAL_UNEXPECTED_COUNT = 5

LAYERS: dict[str, tuple[ValidationSpec, ...]] = {
    "raw": raw.VALIDATIONS,
    "staging": staging.VALIDATIONS,
    "marts": marts.VALIDATIONS,
}


def checkpoint_name(layer: str) -> str:
    return f"{layer}_gate"


def gx_dsn(settings: Settings, logical_date: date | None) -> str:
    """SQLAlchemy URL for GE: the transformer's DSN, session in UTC, logical date set."""
    options = "-c timezone=UTC"
    if logical_date is not None:
        options += f" -c {LOGICAL_DATE_SETTING}={logical_date.isoformat()}"
    dsn = settings.dsn(GX_ROLE).replace("postgresql://", "postgresql+psycopg2://", 1)
    return dsn.replace("application_name=ecom", "application_name=ecom-gx") + (
        "&options=" + quote(options, safe="")
    )


def open_context(
    settings: Settings, logical_date: date | None = None, project_root: Path | None = None
) -> FileDataContext:
    """The file-mode context for one logical date, the warehouse DSN substituted in memory."""
    import great_expectations as gx

    root = Path(project_root or DEFAULT_PROJECT_ROOT)
    return gx.get_context(
        mode="file",
        project_root_dir=str(root),
        runtime_environment={DSN_VARIABLE: gx_dsn(settings, logical_date)},
    )


def close_context(context: FileDataContext) -> None:
    """Release the warehouse connections the context's datasource pooled (GE has no public
    close; left open, each run's pool would hold its connections until collected)."""
    for datasource in context.data_sources.all().values():
        execution_engine = getattr(datasource, "_execution_engine", None)
        if execution_engine is not None:
            execution_engine.close()
        engine = getattr(datasource, "_engine", None)
        if engine is not None:
            engine.dispose()


@dataclass
class SyncReport:
    """What `sync_layer` had to write (empty when the stored project matched the code)."""

    changes: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.changes.append(what)


def sync_layer(context: FileDataContext, layer: str) -> SyncReport:
    """Make the stored project match the code for one layer (idempotent)."""
    if layer not in LAYERS:
        raise UserError(f"Unknown layer {layer!r}: choose one of {', '.join(LAYERS)}.")
    report = SyncReport()
    _sync_context_settings(context, report)
    datasource = _sync_datasource(context, report)
    validation_definitions = []
    for spec in LAYERS[layer]:
        batch_definition = _sync_asset(datasource, spec.asset, report)
        suite = _sync_suite(context, spec, report)
        validation_definitions.append(
            _sync_validation_definition(context, spec, batch_definition, suite, report)
        )
    _sync_checkpoint(context, layer, validation_definitions, report)
    return report


def _sync_context_settings(context: FileDataContext, report: SyncReport) -> None:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    variables = context.variables
    changed = False
    if variables.analytics_enabled is not False:
        variables.analytics_enabled = False
        changed = True
    bars = variables.progress_bars
    globally = bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", None)
    if globally is not False:
        variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        changed = True
    if changed:
        variables.save()
        report.note("context settings: analytics and progress bars off")


def _sync_datasource(context: FileDataContext, report: SyncReport) -> Any:
    template = "${" + DSN_VARIABLE + "}"
    existing = context.data_sources.all().get(DATASOURCE)
    if existing is not None and str(existing.connection_string) == template \
            and existing.create_temp_table:
        return existing
    try:
        datasource = context.data_sources.add_or_update_postgres(
            DATASOURCE, connection_string=template, create_temp_table=True
        )
    except Exception as exc:  # GE wraps driver errors in its own types
        raise UserError(
            f"Great Expectations cannot connect to the warehouse ({first_line(exc)}). "
            "Is the stack up (`ecom stack up`)?"
        ) from exc
    report.note(f"datasource {DATASOURCE}")
    return datasource


def _sync_asset(datasource: Any, spec: AssetSpec, report: SyncReport) -> Any:
    asset = next((a for a in datasource.assets if a.name == spec.name), None)
    if asset is not None and getattr(asset, "query", None) != spec.query:
        datasource.delete_asset(spec.name)
        asset = None
    if asset is None:
        asset = datasource.add_query_asset(spec.name, query=spec.query)
        report.note(f"asset {spec.name}")
    batch_definition = next(
        (b for b in asset.batch_definitions if b.name == BATCH_DEFINITION), None
    )
    if batch_definition is not None and batch_definition.partitioner is not None:
        asset.delete_batch_definition(BATCH_DEFINITION)
        batch_definition = None
    if batch_definition is None:
        # the asset's query already selects the day: the batch is all of it
        batch_definition = asset.add_batch_definition_whole_table(BATCH_DEFINITION)
        report.note(f"batch definition {spec.name}.{BATCH_DEFINITION}")
    return batch_definition


def _expectation_signature(suite: Any) -> list[str]:
    rows = []
    for expectation in suite.expectations:
        config = expectation.configuration.to_json_dict()
        config.pop("id", None)
        config.pop("rendered_content", None)
        rows.append(json.dumps(config, sort_keys=True, default=str))
    return sorted(rows)


def _sync_suite(context: FileDataContext, spec: ValidationSpec, report: SyncReport) -> Any:
    desired = spec.build_suite()
    try:
        existing = context.suites.get(spec.suite_name)
    except Exception:  # DataContextError: not stored yet
        existing = None
    if existing is not None and _expectation_signature(existing) == _expectation_signature(
        desired
    ):
        return existing
    if existing is not None:
        context.suites.delete(spec.suite_name)
    suite = context.suites.add(desired)
    report.note(f"suite {spec.suite_name}")
    return suite


def _sync_validation_definition(
    context: FileDataContext, spec: ValidationSpec, batch_definition: Any, suite: Any,
    report: SyncReport,
) -> Any:
    import great_expectations as gx

    try:
        existing = context.validation_definitions.get(spec.name)
    except Exception:
        existing = None
    if existing is not None and existing.batch_definition.id == batch_definition.id \
            and existing.suite.id == suite.id:
        return existing
    if existing is not None:
        context.validation_definitions.delete(spec.name)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=spec.name, data=batch_definition, suite=suite)
    )
    report.note(f"validation definition {spec.name}")
    return definition


def _sync_checkpoint(
    context: FileDataContext, layer: str, validation_definitions: list[Any], report: SyncReport
) -> Any:
    import great_expectations as gx

    name = checkpoint_name(layer)
    result_format = {
        "result_format": "BASIC",
        "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT,
    }
    try:
        existing = context.checkpoints.get(name)
    except Exception:
        existing = None
    if existing is not None:
        same_definitions = [v.id for v in existing.validation_definitions] == [
            v.id for v in validation_definitions
        ]
        same_actions = not existing.actions  # Data Docs: see expectations.gate.run_gate
        same_format = existing.result_format == result_format
        if same_definitions and same_actions and same_format:
            return existing
        context.checkpoints.delete(name)
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=name,
            validation_definitions=validation_definitions,
            actions=[],
            result_format=result_format,
        )
    )
    report.note(f"checkpoint {name}")
    return checkpoint


def first_line(error: BaseException | str) -> str:
    """The first line of an error message (GE and drivers nest long texts), for one-liners."""
    text = str(error).strip()
    if not text:
        return type(error).__name__ if isinstance(error, BaseException) else "unknown error"
    return text.splitlines()[0][:300]
