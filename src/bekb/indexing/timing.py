"""Where a build's time goes: exclusive wall time per named stage, for IndexReport.timings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Stopwatch:
    """Adds up wall time per stage; time inside a nested stage counts for that one only."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._open: list[list[float]] = []  # per open stage: time spent in stages inside it

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as `name` (less what nested stages take)."""
        started = time.perf_counter()
        self._open.append([0.0])
        try:
            yield
        finally:
            (nested,) = self._open.pop()
            spent = time.perf_counter() - started
            self._seconds[name] = self._seconds.get(name, 0.0) + spent - nested
            if self._open:
                self._open[-1][0] += spent

    def totals(self) -> dict[str, float]:
        """Seconds per stage, in the order each first finished (rounded to milliseconds)."""
        return {name: round(seconds, 3) for name, seconds in self._seconds.items()}
