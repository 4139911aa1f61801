"""Forks index builds on request, each in its own process, for the SIGKILL trials.

Usage: python kill_zygote.py, then one JSON request per line on stdin:
    {"root", "index_dir", "agent", "delay", "full", "kill_at"}
`kill_at` is null (run to the end, or until the test kills the child) or
"Class.method:N:before|after": the child SIGKILLs itself at the N-th call of that step of
the build. For each request stdout gets `started PID`, maybe `finished PID`, then
`exit PID killed|CODE`.

Importing bekb and chromadb takes a second; forking this process (which never opened a store)
starts each trial's build in milliseconds. The build is tests/indexing/index_worker.py's: the
same slowed hashing model, through `KnowledgeBase.index()`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "indexing"))

from index_worker import SlowEmbedder  # noqa: E402  (also puts tests/ on sys.path)

from bekb import KnowledgeBase, Settings  # noqa: E402
from bekb.embedding.cache import EmbeddingCache  # noqa: E402
from bekb.indexing import indexer  # noqa: E402
from bekb.retrieval.bm25 import KeywordIndex  # noqa: E402
from bekb.store import ChromaStore  # noqa: E402

# Every step of a build that writes something, by the name a trial gives it.
STEPS: dict[str, tuple[type, str]] = {
    "EmbeddingCache.put_many": (EmbeddingCache, "put_many"),
    "ChromaStore.put_chunks": (ChromaStore, "put_chunks"),
    "ChromaStore.put_files": (ChromaStore, "put_files"),
    "ChromaStore.delete_chunks": (ChromaStore, "delete_chunks"),
    "ChromaStore.delete_files": (ChromaStore, "delete_files"),
    "KeywordIndex.save": (KeywordIndex, "save"),
    "ChromaStore.set_active": (ChromaStore, "set_active"),
    "ChromaStore.drop": (ChromaStore, "drop"),
}
# Small commits: more points between them for a kill to land on.
COMMIT_EVERY = 4


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())  # one write per line: parent and child share the pipe


def _die_at(kill_at: str) -> None:
    step, nth, when = kill_at.split(":")
    cls, name = STEPS[step]
    real = getattr(cls, name)
    calls = [0]

    def hooked(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == int(nth) and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(self, *args, **kwargs)
        if calls[0] == int(nth) and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(cls, name, hooked)


def _build(request: dict[str, Any]) -> None:
    indexer.COMMIT_EVERY = COMMIT_EVERY
    if request.get("kill_at"):
        _die_at(request["kill_at"])
    settings = Settings.load(
        root=Path(request["root"]),
        index_dir=Path(request["index_dir"]),
        agent_files=(request["agent"],),
    )
    KnowledgeBase.open(settings, embedder=SlowEmbedder(float(request["delay"]))).index(
        full=bool(request.get("full"))
    )


def main() -> None:
    _say("ready")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: one build, then out without touching the parent's state
            code = 0
            try:
                _say(f"started {os.getpid()}")
                _build(request)
                _say(f"finished {os.getpid()}")
            except BaseException as exc:
                _say(f"failed {os.getpid()} {type(exc).__name__}: {exc}")
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            _say(f"exit {pid} {'killed' if os.WTERMSIG(status) == signal.SIGKILL else 'signal'}")
        else:
            _say(f"exit {pid} {os.WEXITSTATUS(status)}")


if __name__ == "__main__":
    main()
