"""SIGKILL during `index()` at every write step and at random moments: afterwards the index
answers searches, no chunk is dangling, duplicated or orphaned once the next run is done, the
keyword index covers exactly the committed chunks, and the result equals a clean build.

Extends tests/indexing/test_kill.py (random moments only): here most kills land on a named
step of the commit protocol (before or after it), through kill_zygote.py, which forks builds
of index_worker.py's slowed model. BEKB_HARDENING_TRIALS sets the number of trials (20).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from conftest import HashingEmbedder, assert_consistent, store_state
from hardening_support import TRIALS_ENV, Zygote, setting, tally

from bekb import KnowledgeBase
from bekb.chunking import chunk_file
from bekb.embedding.model import resolve_model
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.indexing.state import LoadedFile, read_source
from bekb.retrieval.bm25 import keyword_folder

pytestmark = pytest.mark.hardening

TRIALS = setting(TRIALS_ENV, 20)
NOTES = "alpha/skills/sagas/references"
# (step, n-th call, before|after): each write step of a build, the commit above all.
STEPS = [
    ("ChromaStore.put_files", 1, "before"),
    ("ChromaStore.put_files", 2, "after"),
    ("ChromaStore.put_chunks", 2, "before"),
    ("ChromaStore.put_chunks", 1, "after"),
    ("ChromaStore.delete_chunks", 1, "after"),
    ("ChromaStore.delete_chunks", 2, "before"),
    ("ChromaStore.delete_files", 1, "after"),
    ("KeywordIndex.save", 1, "before"),
    ("KeywordIndex.save", 1, "after"),
    ("ChromaStore.set_active", 1, "before"),
    ("ChromaStore.set_active", 1, "after"),
    ("EmbeddingCache.put_many", 1, "after"),
    ("ChromaStore.drop", 1, "after"),
    ("ChromaStore.put_files", 3, "before"),
]
RANDOM_SHARE = 0.3  # of the trials kill at a random moment instead


def write_notes(root: Path, rng: random.Random, generation: int, notes: list[str]) -> set[str]:
    """Add, change and delete notes; returns the paths deleted."""
    folder = root / NOTES
    for _ in range(3):
        notes.append(f"note-{len(notes) + 100:03}.md")
    changed = rng.sample(notes, k=min(len(notes), 9))
    for name in changed:
        i = notes.index(name)
        body = "\n\n".join(
            f"## Part {j}\n\nStep {i}.{j} of generation {generation}: reserve, charge, ship."
            for j in range(rng.randint(1, 5))
        )
        (folder / name).write_text(f"# Note {i}\n\n{body}\n")
    deleted = set()
    if len(notes) > 8:
        gone = notes.pop(rng.randrange(len(notes)))
        if (folder / gone).exists():
            (folder / gone).unlink()
            deleted.add(f"{NOTES}/{gone}")
    return deleted


def expected_registry(kb: KnowledgeBase, counter: ModelTokenizer) -> dict[str, tuple[str, ...]]:
    """What a clean build registers: every selected file's chunk ids, from the chunker."""
    selection = kb.selection()
    out = {}
    for path in selection.files:
        loaded = read_source(selection.root, path)
        assert isinstance(loaded, LoadedFile)
        chunks = chunk_file(path, loaded.text, loaded.source.sha256, counter)
        out[path] = tuple(c.id for c in chunks)
    return out


def keyword_ids(kb: KnowledgeBase) -> list[str]:
    meta = kb.store.active()
    assert meta is not None
    folder = keyword_folder(kb.settings.index_dir, meta.collection, meta.generation)
    return list(json.loads((folder / "chunk_ids.json").read_text()))


@pytest.mark.timeout(300)
def test_sigkill_at_any_step_of_a_build_never_loses_or_mixes_data(tiny_root, tiny_settings):
    rng = random.Random(20261126)
    counter = ModelTokenizer.for_model(resolve_model(tiny_settings.embed_model))
    notes: list[str] = []
    write_notes(tiny_root, rng, 0, notes)
    KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder()).index()
    zygote = Zygote()
    outcomes: Counter[str] = Counter()
    steps_tried = 0
    try:
        for trial in range(TRIALS):
            before, _ = store_state(KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder()))
            deleted = write_notes(tiny_root, rng, trial + 1, notes)
            by_time = rng.random() < RANDOM_SHARE
            step = STEPS[steps_tried % len(STEPS)]
            steps_tried += not by_time
            kill_at = None if by_time else ":".join(map(str, step))
            outcome = zygote.build(
                tiny_settings,
                kill_at=kill_at,
                after=rng.uniform(0.02, 0.6) if by_time else None,
                full=trial % 4 == 3 or step[0] == "ChromaStore.drop",
                delay=0.01 if by_time else 0.0,  # about 40 texts: a build of half a second
            )
            assert outcome == "killed" or outcome.startswith("finished"), outcome
            how = "at a random moment" if by_time else "at a write step"
            outcomes[f"killed {how}" if outcome == "killed" else f"finished, {how}"] += 1

            # The index still answers, from committed files only, with nothing dangling.
            survivor = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
            registry, in_store = store_state(survivor)
            hits = survivor.search("reserve charge ship", k=5)
            assert hits and {h.path for h in hits} <= set(registry), (trial, kill_at)
            assert {c for ids in registry.values() for c in ids} <= in_store, (trial, kill_at)
            assert set(before) - deleted <= set(registry), (trial, kill_at)

            # The next run completes: Chroma, the keyword index and a clean build agree.
            survivor.index()
            assert_consistent(survivor)
            live = [c for ids in store_state(survivor)[0].values() for c in ids]
            assert sorted(keyword_ids(survivor)) == sorted(live), (trial, kill_at)
            assert store_state(survivor)[0] == expected_registry(survivor, counter), (
                trial,
                kill_at,
            )
    finally:
        zygote.close()
    tally("SIGKILL during index", TRIALS)
    for outcome, count in outcomes.items():
        tally(f"SIGKILL during index: {outcome}", count)
    killed = sum(n for outcome, n in outcomes.items() if outcome.startswith("killed"))
    assert killed >= TRIALS * 0.7, outcomes
