"""What the maintenance DAG `ecommerce_maintenance` runs: one step of
`operations.maintenance` per task, with the run's id and logical day.

The actions each step takes are rows of `ops.maintenance_actions` (as from `ecom
maintenance run`); a step whose action failed fails its task, and the tasks after it
(archive, prune: they delete) do not run.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from ecom.config import Settings

MAINTENANCE_DAG_ID = "ecommerce_maintenance"
#: the tasks, in the order they run: `operations.maintenance.STEPS` (a unit test holds
#: them equal), spelled out so that parsing the DAG imports no pyarrow
STEPS = ("kafka_retention", "backup", "expire_backups", "archive", "prune")


def run_step(settings: Settings, name: str, day: date, run_id: str) -> dict[str, Any]:
    """Run one maintenance step; returns its actions' totals (a failure raises)."""
    # pyarrow and fsspec (the archive): at run time, not parse time
    from operations.actions import ActionLog
    from operations.maintenance import STEP_FUNCTIONS

    log = ActionLog(settings, run_id, day)
    logger = logging.getLogger(f"ecom_pipeline.maintenance.{name}")
    STEP_FUNCTIONS[name](settings, log, day, logger.info)
    for action in log.actions:
        logger.info("%s %s: %s, rows %s, bytes %s, %.2f s %s", action.action, action.target,
                    action.status, action.rows, action.bytes, action.seconds, action.detail)
    return {
        "actions": len(log.actions),
        "rows_affected": sum(a.rows or 0 for a in log.actions if a.status == "done"),
        "bytes": sum(a.bytes or 0 for a in log.actions if a.status == "done"),
        "held": [a.target for a in log.actions if a.status == "held"],
    }
