"""The quality gate of one layer for one logical date: run the checkpoint, keep, alert.

`run_gate` is what the CLI (`ecom quality check`) and the Airflow DAG call:
1. open the file-mode GE project and sync the layer's suites/checkpoint from code;
2. run the checkpoint on the day's batches (GE's SQL engine: the work runs in PostgreSQL);
3. write one row per expectation to `ops.data_quality_logs`;
4. on failure, publish an alert to the alerts topic and post it to the webhook
   (`expectations.notify`: once per layer and day).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecom.config import Settings
from ecom.errors import UserError
from expectations.alerts import publish_alert
from expectations.notify import notify_gate_failure
from expectations.params import RunValues, run_values
from expectations.project import (
    LAYERS,
    checkpoint_name,
    close_context,
    first_line,
    open_context,
    sync_layer,
)
from expectations.results import GateResult, Outcome
from expectations.store import previous_volumes, write_logs

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext


def new_run_id(layer: str, logical_date: date, started_at: datetime) -> str:
    return f"{layer}-{logical_date.isoformat()}-{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run_gate(
    settings: Settings,
    layer: str,
    logical_date: date,
    *,
    project_root: Path | None = None,
    publish: bool = True,
) -> GateResult:
    """Validate `layer` for `logical_date`; results logged, alert sent when it fails."""
    if layer not in LAYERS:
        raise UserError(f"Unknown layer {layer!r}: choose one of {', '.join(LAYERS)}.")
    started_at = datetime.now(UTC)
    run_id = new_run_id(layer, logical_date, started_at)
    values = run_values(
        logical_date, started_at,
        freshness_hours=settings.freshness_hours,
        max_reject_ratio=settings.max_reject_ratio,
        previous_volumes=previous_volumes(settings, logical_date) if layer == "raw" else [],
    )
    context = open_context(settings, logical_date, project_root)
    try:
        sync_layer(context, layer)
        outcomes, validations = _run_checkpoint(context, layer, values, run_id)
        if not all(o.success for o in outcomes):  # the alert links to this run's pages
            context.build_data_docs(resource_identifiers=validations)
        docs = data_docs_index(context)
    finally:
        close_context(context)
    result = GateResult(
        layer=layer, logical_date=logical_date, run_id=run_id, started_at=started_at,
        finished_at=datetime.now(UTC), outcomes=tuple(outcomes), data_docs=docs,
    )
    write_logs(settings, result)
    if publish and not result.success:
        # the webhook first: it never raises, so a person hears of it even with Kafka down
        delivery = notify_gate_failure(settings, result)
        result = dataclasses.replace(result, notification=delivery.describe())
        publish_alert(settings, result)
    return result


def _run_checkpoint(
    context: FileDataContext, layer: str, values: RunValues, run_id: str
) -> tuple[list[Outcome], list[Any]]:
    """The outcome of each expectation, and the identifiers of the stored results.

    The checkpoint does not rebuild Data Docs (GE's `UpdateDataDocsAction`): that rebuilt
    the site's index over every stored result, ~1.5 s per gate on 2 cores after a few weeks
    and growing, 80% of a gate's time. `run_gate` renders a failed run's pages (the alert
    links to them); `ecom quality docs` builds the whole site.
    """
    from great_expectations.core.run_identifier import RunIdentifier

    checkpoint = context.checkpoints.get(checkpoint_name(layer))
    try:
        result = checkpoint.run(
            expectation_parameters=values.expectation_parameters,
            run_id=RunIdentifier(run_name=run_id, run_time=values.started_at),
        )
    except Exception as exc:
        raise UserError(
            f"The {layer} checkpoint could not run ({first_line(exc)}). Check that the "
            "warehouse is up and the layer's tables exist (run with --verbose for details)."
        ) from exc
    outcomes = []
    for suite_result in result.run_results.values():
        outcomes += [_outcome(suite_result.suite_name, r) for r in suite_result.results]
    return outcomes, list(result.run_results)


def _column_of(kwargs: dict[str, Any]) -> str | None:
    if kwargs.get("column"):
        return str(kwargs["column"])
    if kwargs.get("column_A"):
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    if kwargs.get("column_list"):
        return ",".join(kwargs["column_list"])
    return None


def _outcome(suite: str, validation: Any) -> Outcome:
    config = validation.expectation_config
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    result = dict(validation.result or {})
    error = _exception_message(validation.exception_info or {})
    observed = result.get("observed_value")
    unexpected = result.get("unexpected_count")
    if config.type == "unexpected_rows_expectation" and isinstance(observed, int):
        unexpected = observed
    return Outcome(
        suite=suite,
        expectation_type=config.type,
        success=bool(validation.success),
        column=_column_of(kwargs),
        description=config.description,
        kwargs=kwargs,
        observed_value=observed,
        unexpected_count=unexpected,
        element_count=result.get("element_count"),
        unexpected_percent=result.get("unexpected_percent"),
        sample=list(result.get("partial_unexpected_list") or [])[:5],
        error=error,
    )


def _exception_message(info: dict[str, Any]) -> str | None:
    """GE reports a failed metric as {raised_exception, exception_message}, possibly nested
    per metric; the first message, if any expectation raised."""
    if info.get("raised_exception"):
        return first_line(str(info.get("exception_message") or "raised an exception"))
    for value in info.values():
        if isinstance(value, dict) and (message := _exception_message(value)):
            return message
    return None


def data_docs_index(context: FileDataContext) -> str | None:
    """Path of the local Data Docs site's index.html (None before the first build)."""
    for site in context.get_docs_sites_urls():
        url = site.get("site_url") or ""
        if url.startswith("file://"):
            return url.removeprefix("file://")
    return None


def build_data_docs(settings: Settings, project_root: Path | None = None) -> str:
    """(Re)build the static Data Docs site from the stored suites and results."""
    context = open_context(settings, None, project_root)
    try:
        for layer in LAYERS:
            sync_layer(context, layer)
        context.build_data_docs()
        path = data_docs_index(context)
    finally:
        close_context(context)
    if path is None:
        raise UserError("Great Expectations built no local Data Docs site; check "
                        "expectations/gx/great_expectations.yml (data_docs_sites).")
    return path

