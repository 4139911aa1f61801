"""The `reindex` tool's background build: one incremental `KnowledgeBase.index` at a time,
its progress readable while it runs (a large corpus would outlast a host's tool timeout)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from bekb import BekbError, KnowledgeBase, Progress
from bekb.contracts import index_json
from bekb.errors import one_line
from bekb.mcp.schemas import BuildState


class BackgroundBuild:
    """Starts builds in a thread and keeps the latest one's state."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self._kb = kb
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._state = _fresh(running=False, stage="", started_at=None)

    def start(self) -> tuple[bool, BuildState]:
        """Start a build unless one is running; whether it started, and the state."""
        with self._lock:
            if self._state["running"]:
                return False, BuildState(**self._state)
            self._state = _fresh(running=True, stage="scan", started_at=_now())
            self._idle.clear()
        threading.Thread(target=self._run, name="bekb-reindex", daemon=True).start()
        return True, self.state()

    def state(self) -> BuildState:
        """A copy of the latest build's state."""
        with self._lock:
            return BuildState(**self._state)

    def wait(self, timeout: float | None = None) -> BuildState:
        """The state once no build runs (`timeout` seconds at most)."""
        self._idle.wait(timeout)
        return self.state()

    def _progress(self, step: Progress) -> None:
        with self._lock:
            self._state["stage"] = step.stage
            self._state["done"] = step.done
            self._state["total"] = step.total
            self._state["detail"] = step.detail

    def _run(self) -> None:
        report, error = None, None
        try:
            report = index_json(self._kb.index(on_progress=self._progress))
        except BekbError as exc:
            error = str(exc)
        except Exception as exc:  # a thread's failure must reach `status`, not vanish
            error = f"unexpected {type(exc).__name__}: {one_line(exc)}"
        with self._lock:
            self._state["running"] = False
            self._state["finished_at"] = _now()
            self._state["error"] = error
            self._state["report"] = report
            if report is not None:
                self._state["stage"], self._state["detail"] = "finish", ""
        self._idle.set()


def _fresh(*, running: bool, stage: str, started_at: str | None) -> BuildState:
    return BuildState(
        running=running,
        stage=stage,
        done=0,
        total=0,
        detail="",
        started_at=started_at,
        finished_at=None,
        error=None,
        report=None,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
