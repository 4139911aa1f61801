"""Runs one `KnowledgeBase.index()` with a slow fake model, for the SIGKILL tests.

Usage: python index_worker.py ROOT INDEX_DIR AGENT_FILE SECONDS_PER_TEXT
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import HashingEmbedder

from bekb import KnowledgeBase, Settings


class SlowEmbedder(HashingEmbedder):
    """The hashing model, slowed down so a kill lands in the middle of the work."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def embed(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
        time.sleep(self.delay * len(texts))
        return super().embed(texts)


def main() -> None:
    root, index_dir, agent, delay = sys.argv[1:5]
    settings = Settings.load(root=Path(root), index_dir=Path(index_dir), agent_files=(agent,))
    kb = KnowledgeBase.open(settings, embedder=SlowEmbedder(float(delay)))
    print("started", flush=True)
    report = kb.index()
    print(f"done {report.chunks}", flush=True)


if __name__ == "__main__":
    main()
