"""Terminal progress bars: training (iteration, loss, images/s) and counted work (images).

Rich (a Kedro dependency) draws it on a terminal; elsewhere (CI, logs) a log line
every ``LOG_SHARE`` of the run keeps long work visible.
"""

from __future__ import annotations

import logging
import math
from types import TracebackType
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)
LOG_SHARE = 0.1
BarT = TypeVar("BarT", bound="_Bar")


class _Bar:
    """A started-on-enter, stopped-on-exit rich bar; subclasses say which columns it shows."""

    progress: Progress

    def __enter__(self: BarT) -> BarT:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()


class TrainingProgress(_Bar):
    """Use as a context manager; pass ``update`` as the trainer's callback."""

    def __init__(self, total: int, description: str = "training") -> None:
        self.total = total
        self.every = max(1, math.ceil(total * LOG_SHARE))
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  {task.fields[ips]:.1f} img/s"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.progress.add_task(description, total=total, loss=math.nan, ips=0.0)

    def update(self, iteration: int, metrics: dict[str, float]) -> None:
        loss, ips = metrics.get("loss", math.nan), metrics.get("images_per_s", 0.0)
        self.progress.update(self.task, completed=iteration, loss=loss, ips=ips)
        if not self.progress.console.is_terminal and (
            iteration % self.every == 0 or iteration == self.total
        ):
            log.info("iteration %d/%d  loss %.4f  %.1f images/s", iteration, self.total, loss, ips)


class CountProgress(_Bar):
    """A bar for work counted in items (validating images): done/total, share, time left.

    Use as a context manager; pass ``update`` as a ``progress(done, total)`` callback. Off a
    terminal a log line every ``LOG_SHARE`` of the work keeps it visible.
    """

    def __init__(self, total: int, description: str, unit: str = "images") -> None:
        self.total, self.unit, self.description = total, unit, description
        self.every = max(1, math.ceil(total * LOG_SHARE))
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.progress.add_task(description, total=total)

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)
        if not self.progress.console.is_terminal and (done % self.every == 0 or done == total):
            log.info("%s: %d/%d %s", self.description, done, total, self.unit)
