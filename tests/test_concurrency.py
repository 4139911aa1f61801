"""Readers never block on a writer, and two writers never corrupt the index.

Every process here is a real one: searchers and the writer run this module as a script
(`python test_concurrency.py reader|writer ...`), in embedded mode (one index dir shared by all)
and in server mode (a `chroma run` server, each process with its own index dir).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import chroma_server as servers
import pytest
from conftest import TINY_AGENT, HashingEmbedder, assert_consistent, store_state

from bekb import IndexLockedError, KnowledgeBase, Settings

# The server fixtures, registered for this module.
chroma_server = servers.chroma_server
chroma_url = servers.chroma_url

READERS = 8
QUERIES = ("saga compensation", "cache invalidation", "token rotation", "reserve charge ship")
WAIT = 60.0  # seconds any one step may take before the test gives up


def add_notes(root: Path, count: int) -> None:
    """More files, so a rebuild has enough chunks to take a few seconds with the slow model."""
    folder = root / "alpha/skills/sagas/references"
    for i in range(count):
        body = "\n\n".join(
            f"## Part {j}\n\nStep {i}.{j}: reserve, charge, ship; compensate on failure."
            for j in range(4)
        )
        (folder / f"note-{i:03}.md").write_text(f"# Note {i}\n\n{body}\n")


def settings_for(root: Path, index_dir: Path, url: str | None, **extra: object) -> Settings:
    return Settings.load(
        root=root, index_dir=index_dir, agent_files=(TINY_AGENT,), chroma_url=url, **extra
    )


def committed_mark(index_dir: Path) -> Path:
    """The file a writer creates when its build is committed, before it lets go of the lock."""
    return index_dir.with_name(index_dir.name + ".committed")


def start(role: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, role, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expect_line(process: subprocess.Popen[str], wanted: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != wanted:
        process.kill()
        _, err = process.communicate(timeout=WAIT)
        raise AssertionError(f"expected {wanted!r}, got {line!r}; stderr:\n{err[-3000:]}")


def finish(process: subprocess.Popen[str]) -> str:
    try:
        out, err = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err[-3000:]
    return out


def searches_during_a_rebuild(root: Path, index_dirs: Sequence[Path], url: str | None) -> None:
    """Eight searching processes keep searching while a writer switches the model."""
    add_notes(root, 20)
    first = KnowledgeBase.open(settings_for(root, index_dirs[0], url), embedder=HashingEmbedder())
    first.index()
    old = first.store.active()
    assert old is not None

    stop, go = index_dirs[0].with_name("stop-searching"), index_dirs[0].with_name("go")
    writer = start("writer", root, index_dirs[0], url or "-", 0.05, go)  # starts up meanwhile
    readers = [
        start("reader", root, index_dirs[i % len(index_dirs)], url or "-", stop)
        for i in range(READERS)
    ]
    for reader in readers:
        expect_line(reader, "ready")  # each has searched the old index once
    expect_line(writer, "waiting")
    go.touch()
    expect_line(writer, "locked")
    locked_at = time.time()
    writer_out = finish(writer)
    done_at = time.time()
    time.sleep(0.5)  # let every reader search the new index too
    stop.touch()
    results = [json.loads(finish(reader)) for reader in readers]

    new = first.store.active()
    assert new is not None
    assert writer_out.split() == ["done", new.collection]
    assert new.embed_model == "test/slow-hashing-embedder" != old.embed_model
    assert [
        {"failures": r["failures"], "empty": r["empty"], "seen": r["seen"]} for r in results
    ] == [{"failures": [], "empty": 0, "seen": [old.collection, new.collection]}] * READERS
    # Every reader searched while the writer held the lock (and was not held up by it).
    during = [sum(locked_at < t < done_at for t in r["times"]) for r in results]
    assert min(during) >= 3, (during, done_at - locked_at)
    assert_consistent(first)


@pytest.mark.hardening  # load: 8 processes through a rebuild (make test-rest)
@pytest.mark.timeout(180)
def test_eight_searchers_succeed_during_a_rebuild_embedded(tiny_root, tmp_path):
    searches_during_a_rebuild(tiny_root, [tmp_path / "index"], None)


@pytest.mark.hardening  # load: 8 processes through a rebuild (make test-rest)
@pytest.mark.timeout(180)
def test_eight_searchers_succeed_during_a_rebuild_on_a_server(tiny_root, tmp_path, chroma_url):
    # Every process a separate machine: its own index dir, so its own BM25 cache.
    machines = [tmp_path / f"machine-{i}" for i in range(READERS)]
    searches_during_a_rebuild(tiny_root, machines, chroma_url)


@pytest.mark.slow  # long: runs in `make test-rest`
@pytest.mark.timeout(120)
def test_a_second_cli_writer_gives_up_after_lock_timeout_with_one_line(tiny_root, tmp_path):
    index_dir = tmp_path / "index"
    first = KnowledgeBase.open(settings_for(tiny_root, index_dir, None), embedder=HashingEmbedder())
    first.index()
    before = store_state(first)
    add_notes(tiny_root, 30)
    writer = start("writer", tiny_root, index_dir, "-", 0.02, "-")
    expect_line(writer, "waiting")
    expect_line(writer, "locked")

    started = time.monotonic()
    second = subprocess.run(
        [
            *(sys.executable, "-m", "bekb", "--root", str(tiny_root), "--index-dir", index_dir),
            *("index", "--lock-timeout", "0.5"),
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "BEKB_AGENT_FILES": TINY_AGENT},
    )
    waited = time.monotonic() - started
    assert writer.poll() is None, "the first writer must still hold the lock"
    assert store_state(first) == before  # nothing of the second writer reached the store

    assert (second.returncode, second.stdout) == (1, "")
    assert second.stderr == (
        f"waiting for another `bekb index`, which holds {index_dir / 'write.lock'} "
        "(up to 0.5s)\n"
        f"error: another `bekb index` holds {index_dir / 'write.lock'}; gave up after 0.5s "
        "(wait for it, or raise --lock-timeout)\n"
    )
    assert waited < 15
    finish(writer)
    assert_consistent(first)
    assert len(store_state(first)[0]) == 5 + 30


@pytest.mark.slow  # long: runs in `make test-rest`
@pytest.mark.timeout(120)
def test_a_second_writer_waits_for_the_lock_then_runs(tiny_root, tmp_path):
    index_dir = tmp_path / "index"
    first = KnowledgeBase.open(settings_for(tiny_root, index_dir, None), embedder=HashingEmbedder())
    add_notes(tiny_root, 30)
    first.index()
    writer = start("writer", tiny_root, index_dir, "-", 0.02, "-")
    expect_line(writer, "waiting")
    expect_line(writer, "locked")

    embedder = HashingEmbedder()
    second = KnowledgeBase.open(
        settings_for(tiny_root, index_dir, None, lock_timeout=WAIT), embedder=embedder
    )
    report = second.index()  # blocks until the writer is done, then switches the model back

    assert committed_mark(index_dir).exists(), "the second writer ran before the first let go"
    finish(writer)
    assert (report.full_rebuild, report.added, report.embedded) == (True, 35, 0)
    assert second.store.active().embed_model == HashingEmbedder.model_id
    assert_consistent(second)


@pytest.mark.slow  # long: runs in `make test-rest`
@pytest.mark.timeout(60)
def test_a_second_writer_with_no_wait_fails_with_index_locked_error(tiny_root, tmp_path):
    index_dir = tmp_path / "index"
    add_notes(tiny_root, 30)
    writer = start("writer", tiny_root, index_dir, "-", 0.02, "-")
    expect_line(writer, "waiting")
    expect_line(writer, "locked")
    second = KnowledgeBase.open(
        settings_for(tiny_root, index_dir, None, lock_timeout=0), embedder=HashingEmbedder()
    )

    with pytest.raises(IndexLockedError):
        second.index()

    finish(writer)
    assert_consistent(second)


# -- the worker processes ------------------------------------------------------------------------


class SlowEmbedder(HashingEmbedder):
    """The hashing model under another name (a model switch), slowed to stretch the rebuild."""

    model_id = "test/slow-hashing-embedder"

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def embed(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
        time.sleep(self.delay * len(texts))
        return super().embed(texts)


def _writer(root: str, index_dir: str, url: str, delay: str, go: str) -> None:
    """Rebuild under the slow model once the `go` file exists (`-`: at once).

    Says `waiting` when started up, `locked` once it holds the write lock, `done KEY` at the end.
    """
    from bekb.domain import Progress

    settings = settings_for(Path(root), Path(index_dir), None if url == "-" else url)
    kb = KnowledgeBase.open(settings, embedder=SlowEmbedder(float(delay)))
    said: list[bool] = []
    print("waiting", flush=True)
    while go != "-" and not Path(go).exists():
        time.sleep(0.01)

    def progress(step: Progress) -> None:
        if not said:  # the first event comes from inside the lock
            said.append(True)
            print("locked", flush=True)
        if step.stage == "finish":  # committed, the lock still held
            committed_mark(Path(index_dir)).touch()

    kb.index(on_progress=progress)
    active = kb.store.active()
    print(f"done {active.collection if active else ''}", flush=True)


def _reader(root: str, index_dir: str, url: str, stop: str) -> None:
    """Search until the `stop` file appears; report failures, empty results, indexes seen."""
    settings = settings_for(Path(root), Path(index_dir), None if url == "-" else url)
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    failures: list[str] = []
    seen: list[str] = []
    times: list[float] = []
    empty = 0

    def search(n: int) -> None:
        nonlocal empty
        try:
            if not kb.search(QUERIES[n % len(QUERIES)], k=5):
                empty += 1
            meta = kb.store.active()
            if meta is not None and (not seen or seen[-1] != meta.collection):
                seen.append(meta.collection)
            times.append(time.time())
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")

    search(0)
    print("ready", flush=True)
    n = 1
    while not Path(stop).exists():
        search(n)
        n += 1
        time.sleep(0.05)
    print(
        json.dumps(
            {
                "failures": failures[:5],
                "empty": empty,
                "seen": seen,
                "times": times,
            }
        )
    )


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    {"reader": _reader, "writer": _writer}[role](*args)
