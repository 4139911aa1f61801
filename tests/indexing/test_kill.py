"""A real SIGKILL at any point of `index()` leaves the previous index serving, and the next
run completes the work with Chroma exactly matching the committed state."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_AGENT, HashingEmbedder, assert_consistent, store_state

from bekb import KnowledgeBase

# Kills mid-build: with the hardening tests (make test-rest).
pytestmark = pytest.mark.hardening
WORKER = Path(__file__).with_name("index_worker.py")
TRIALS = 6


def add_many_files(root: Path, count: int, generation: int) -> None:
    folder = root / "alpha/skills/sagas/references"
    for i in range(count):
        body = "\n\n".join(
            f"## Part {j}\n\nStep {i}.{j} of generation {generation}: reserve, charge, ship."
            for j in range(6)
        )
        (folder / f"note-{i:03}.md").write_text(f"# Note {i}\n\n{body}\n")


def run_and_kill(root: Path, index_dir: Path, after: float) -> bool:
    """Start an index build in a subprocess and SIGKILL it; True if it finished first."""
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), str(root), str(index_dir), TINY_AGENT, "0.002"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "started"
    time.sleep(after)
    finished = worker.poll() is not None
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    return finished


@pytest.mark.timeout(240)
def test_sigkill_during_index_never_loses_or_mixes_data(tiny_root, tiny_settings):
    rng = random.Random(20261126)
    embedder = HashingEmbedder()
    kb = KnowledgeBase.open(tiny_settings, embedder=embedder)
    add_many_files(tiny_root, 40, generation=0)
    kb.index()
    kills = 0
    for trial in range(1, TRIALS + 1):
        add_many_files(tiny_root, 40 + trial * 3, generation=trial)  # change and add files
        before = store_state(kb)[0]
        finished = run_and_kill(tiny_root, tiny_settings.index_dir, rng.uniform(0.05, 1.2))
        kills += not finished

        # The index still answers, from committed files only.
        after_kill = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
        hits = after_kill.search("reserve charge ship", k=5)
        registry, in_store = store_state(after_kill)
        assert hits and all(hit.path in registry for hit in hits)
        assert {c for ids in registry.values() for c in ids} <= in_store
        assert set(registry) >= set(before) - {"alpha/skills/sagas/references/details.md"}

        # The next run completes the work and leaves Chroma equal to the committed state.
        after_kill.index()
        assert_consistent(after_kill)
        fresh = KnowledgeBase.open(
            tiny_settings.model_copy(
                update={"index_dir": tiny_settings.index_dir.with_name(f"clean{trial}")}
            ),
            embedder=HashingEmbedder(),
        )
        fresh.index()
        assert store_state(after_kill)[0] == store_state(fresh)[0]
    assert kills >= TRIALS // 2, "most trials must kill a build in progress"
