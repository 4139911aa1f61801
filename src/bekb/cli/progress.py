"""A Rich progress bar for index builds, fed by KnowledgeBase.index's on_progress callback."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from bekb.cli import render
from bekb.domain import Progress

LABELS = {
    "scan": "scanning files",
    "chunk": "chunking",
    "embed": "embedding",
    "write": "writing",
    "adapt": "fitting the query adapter",
    "finish": "done",
}


class IndexProgress:
    """One bar per stage, with ETA; prints to stderr so stdout stays clean."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> IndexProgress:
        return self  # the bar starts with the first step: a failure before any work prints none

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._tasks:
            self._bar.stop()

    def update(self, step: Progress) -> None:
        """Show `step` (an on_progress callback)."""
        if step.stage == "wait":
            self._bar.console.print(
                render.plain(step.detail), markup=False, highlight=False, soft_wrap=True
            )
            return
        if step.stage == "finish" or step.total == 0:
            return
        task = self._tasks.get(step.stage)
        if not self._tasks:
            self._bar.start()
        if task is None:
            task = self._bar.add_task(LABELS[step.stage], total=step.total)
            self._tasks[step.stage] = task
        self._bar.update(task, completed=step.done, total=step.total)
