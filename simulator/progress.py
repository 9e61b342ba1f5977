"""A rich progress bar with events/s for simulation runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Messages per second over the last few seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed or 0:>9,.0f} events/s", style="progress.data.speed")


def expected_messages(plan: object, bad_rate: float) -> int | None:
    """Roughly how many messages a plan sends (None when it runs until stopped)."""
    from simulator.run import BackfillPlan, LivePlan

    if isinstance(plan, BackfillPlan):
        return round(plan.expected_valid() / (1.0 - bad_rate))
    if isinstance(plan, LivePlan) and plan.duration_s:
        return round(plan.rate * plan.duration_s)
    return None


@contextmanager
def progress_reporter(console: Console, label: str, plan: object, bad_rate: float,
                      enabled: bool = True) -> Iterator[Callable[[int], None] | None]:
    """Yields `on_progress(sent)` driving a progress bar, or None when disabled."""
    if not enabled:
        yield None
        return
    total = expected_messages(plan, bad_rate)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               RateColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, speed_estimate_period=5.0) as bar:
        task = bar.add_task(label, total=total)
        last = [0]

        def update(sent: int) -> None:
            last[0] = sent
            if total is not None and sent > total:
                bar.update(task, total=sent)
            bar.update(task, completed=sent)

        yield update
        bar.update(task, total=last[0], completed=last[0])
