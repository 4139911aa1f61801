"""`watch` keeps the index in step with a live workspace: edits, adds, deletes, renames,
bursts, citation changes, bad files and a clean stop; and `bekb index --watch` as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from conftest import (
    TINY_AGENT,
    HashingEmbedder,
    assert_consistent,
    ctrl_c_reaches_child,
    store_state,
)

from bekb import BekbError, IndexLockedError, IndexReport, KnowledgeBase, Settings
from bekb.domain import SkippedFile
from bekb.indexing.lock import index_write_lock
from bekb.indexing.watch import WatchScope

DEBOUNCE_MS = 150
WAIT_S = 5.0
# The first build of a watcher also pays for cold imports (chromadb, onnxruntime): with an
# empty page cache that alone took more than WAIT_S here.
FIRST_BUILD_S = 60.0

SAGAS = "alpha/skills/sagas/SKILL.md"
DETAILS = "alpha/skills/sagas/references/details.md"
CACHING = "alpha/skills/caching/SKILL.md"
SERVER = "beta/src/server.py"
UNRELATED = "alpha/skills/unrelated/SKILL.md"


def settles_consistent(kb: KnowledgeBase, timeout: float = WAIT_S) -> None:
    """`assert_consistent`, once the rebuild that made a change visible has finished.

    A rebuild deletes the chunks it superseded just after switching to the new generation,
    so a test that saw the switch may look at the store a moment before that.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            assert_consistent(kb)
            return
        except AssertionError:
            time.sleep(0.02)
    assert_consistent(kb)


def wait_until(condition: Callable[[], object], timeout: float = WAIT_S) -> None:
    """Poll `condition` every 20 ms until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.02)


@dataclass
class Watcher:
    """A `watch` running in a thread, with what it reported."""

    kb: KnowledgeBase
    thread: threading.Thread
    stop: threading.Event
    reports: list[IndexReport] = field(default_factory=list)
    errors: list[BekbError] = field(default_factory=list)

    def indexed(self) -> dict[str, tuple[str, ...]]:
        return store_state(self.kb)[0]

    def wait_rebuilds(self, count: int, timeout: float = WAIT_S) -> None:
        wait_until(lambda: len(self.reports) >= count, timeout)


@pytest.fixture
def watcher(tiny_settings: Settings) -> Iterator[Watcher]:
    """A watcher over the tiny corpus (hashing embedder), its initial build done."""
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    stop = threading.Event()
    w = Watcher(kb, threading.Thread(target=lambda: None), stop)
    w.thread = threading.Thread(
        target=kb.watch,
        kwargs={
            "debounce_ms": DEBOUNCE_MS,
            "on_rebuild": w.reports.append,
            "on_error": w.errors.append,
            "stop_event": stop,
        },
        daemon=True,
    )
    w.thread.start()
    w.wait_rebuilds(1, FIRST_BUILD_S)
    yield w
    stop.set()
    w.thread.join(timeout=5)


def test_watch_starts_with_an_index_of_the_corpus(watcher):
    first = watcher.reports[0]
    assert (first.added, first.changed, first.removed) == (5, 0, 0)
    assert sorted(watcher.indexed()) == [CACHING, SAGAS, DETAILS, "beta/docs/auth.md", SERVER]
    assert watcher.errors == []


def test_edited_file_is_searchable_after_the_rebuild(watcher, tiny_root):
    path = tiny_root / CACHING
    path.write_text(path.read_text() + "\n## Zebra\n\nZebra quantum lanterns glow.\n")

    def found() -> bool:
        hits = watcher.kb.search("zebra quantum lanterns", k=1)
        return bool(hits) and "Zebra quantum lanterns" in hits[0].text

    watcher.wait_rebuilds(2)
    wait_until(found)
    assert watcher.kb.search("zebra quantum lanterns", k=1)[0].path == CACHING
    assert (watcher.reports[1].changed, watcher.reports[1].added) == (1, 0)
    settles_consistent(watcher.kb)


def test_file_added_to_a_cited_skill_folder_is_indexed(watcher, tiny_root):
    (tiny_root / "alpha/skills/sagas/references/timeouts.md").write_text(
        "# Timeouts\n\nA saga step that hangs is compensated after its deadline.\n"
    )
    wait_until(lambda: "alpha/skills/sagas/references/timeouts.md" in watcher.indexed())
    settles_consistent(watcher.kb)


def test_deleted_file_leaves_the_index(watcher, tiny_root):
    (tiny_root / SERVER).unlink()
    watcher.wait_rebuilds(2)
    assert watcher.reports[1].removed == 1
    assert SERVER not in watcher.indexed()
    settles_consistent(watcher.kb)


def test_renamed_file_moves_in_the_index(watcher, tiny_root):
    renamed = "alpha/skills/sagas/references/compensation.md"
    (tiny_root / DETAILS).rename(tiny_root / renamed)
    wait_until(lambda: renamed in watcher.indexed())
    assert DETAILS not in watcher.indexed()
    settles_consistent(watcher.kb)


def test_a_checkout_burst_of_50_files_is_one_rebuild(watcher, tiny_root):
    """50 writes in well under the debounce window are one batch, so one rebuild.

    A batch ends only after a whole quiet window (DEBOUNCE_MS) with no new change, and the
    writes take a few ms in all: the burst cannot be split.
    """
    folder = tiny_root / "alpha/skills/sagas/references"
    started = time.monotonic()
    for i in range(50):
        (folder / f"step-{i:02}.md").write_text(f"# Step {i}\n\nReserve, charge, ship {i}.\n")
    burst = time.monotonic() - started
    assert burst < DEBOUNCE_MS / 1000 / 2, f"the burst itself took {burst:.3f}s"
    watcher.wait_rebuilds(2)
    time.sleep(3 * DEBOUNCE_MS / 1000)  # room for a (wrong) second rebuild to show up
    assert len(watcher.reports) == 2
    assert watcher.reports[1].added == 50
    assert len(watcher.indexed()) == 55


def test_a_new_citation_brings_its_skill_in_and_dropping_it_removes_it(watcher, tiny_root):
    agent = tiny_root / TINY_AGENT
    original = agent.read_text()
    agent.write_text(original + f"- Something unrelated: `{UNRELATED}`\n")
    wait_until(lambda: UNRELATED in watcher.indexed())
    # The newly cited skill's folder is watched from now on.
    (tiny_root / UNRELATED).write_text("# Unrelated\n\nNow about gardening with octopuses.\n")
    wait_until(lambda: watcher.kb.search("gardening octopuses", k=1)[0].path == UNRELATED)

    agent.write_text(original)
    wait_until(lambda: UNRELATED not in watcher.indexed())
    settles_consistent(watcher.kb)


def test_a_citation_resolving_later_is_indexed_when_the_file_appears(watcher, tiny_root):
    stream = tiny_root / "gamma/src/stream.rs"  # cited by the agent file, missing so far
    stream.parent.mkdir(parents=True)
    stream.write_text("fn stream() -> u32 {\n    42\n}\n")
    wait_until(lambda: "gamma/src/stream.rs" in watcher.indexed())


def test_a_file_turning_invalid_is_skipped_and_watching_goes_on(watcher, tiny_root):
    (tiny_root / DETAILS).write_bytes(b"caf\xe9 not text")  # Latin-1, not UTF-8
    watcher.wait_rebuilds(2)
    assert watcher.reports[1].skipped == (SkippedFile(DETAILS, "not valid UTF-8 (byte 3)"),)
    assert DETAILS in watcher.indexed()  # the last good version keeps answering

    (tiny_root / SERVER).unlink()
    wait_until(lambda: SERVER not in watcher.indexed())
    assert watcher.errors == []


def test_a_failed_rebuild_is_reported_and_the_next_change_is_indexed(tiny_settings, tiny_root):
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder(), lock_timeout=0.1)
    stop = threading.Event()
    reports: list[IndexReport] = []
    errors: list[BekbError] = []
    thread = threading.Thread(
        target=kb.watch,
        kwargs={
            "debounce_ms": DEBOUNCE_MS,
            "on_rebuild": reports.append,
            "on_error": errors.append,
            "stop_event": stop,
        },
        daemon=True,
    )
    thread.start()
    wait_until(lambda: len(reports) == 1, FIRST_BUILD_S)
    try:
        with index_write_lock(tiny_settings.index_dir, timeout=0):  # another writer holds the index
            (tiny_root / SERVER).unlink()
            wait_until(lambda: len(errors) == 1)
        assert isinstance(errors[0], IndexLockedError)
        (tiny_root / "beta/docs/auth.md").write_text("# Auth\n\nTokens expire.\n")
        wait_until(lambda: len(reports) == 2)
        assert (reports[1].removed, reports[1].changed) == (1, 1)
    finally:
        stop.set()
        thread.join(timeout=5)


def test_changes_inside_the_index_dir_and_to_unselected_files_are_ignored(tiny_root, tmp_path):
    settings = Settings.load(
        root=tiny_root, index_dir=tiny_root / ".bekb-index", agent_files=(TINY_AGENT,)
    )
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    root = tiny_root.resolve()
    scope = WatchScope.of(kb, root, settings.index_dir.resolve())
    relevant = {
        rel: scope.relevant(str(root / rel))
        for rel in [
            ".bekb-index/chroma.sqlite3",
            "alpha/skills/caching/.SKILL.md.swp",
            "alpha/skills/caching/notes.md",
            "alpha/skills/caching/image.png",
            "alpha/skills/unrelated/SKILL.md",
            "alpha/agents/fastapi-pro.md",
            "alpha/skills",
            "gamma/src/stream.rs",
            TINY_AGENT,
            SERVER,
        ]
    }
    assert relevant == {
        ".bekb-index/chroma.sqlite3": False,
        "alpha/skills/caching/.SKILL.md.swp": False,
        "alpha/skills/caching/notes.md": True,
        "alpha/skills/caching/image.png": False,
        "alpha/skills/unrelated/SKILL.md": False,
        "alpha/agents/fastapi-pro.md": False,
        "alpha/skills": True,
        "gamma/src/stream.rs": True,
        TINY_AGENT: True,
        SERVER: True,
    }


def test_workspace_scope_watches_every_indexable_file(tiny_root, tmp_path):
    settings = Settings.load(
        root=tiny_root, index_dir=tmp_path / "index", agent_files=(TINY_AGENT,), scope="workspace"
    )
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    root = tiny_root.resolve()
    scope = WatchScope.of(kb, root, settings.index_dir.resolve())
    relevant = {
        rel: scope.relevant(str(root / rel))
        for rel in ["delta/skills/new/SKILL.md", "delta/skills/new/logo.png", ".git/index"]
    }
    assert relevant == {
        "delta/skills/new/SKILL.md": True,
        "delta/skills/new/logo.png": False,
        ".git/index": False,
    }


def test_index_dir_under_the_root_does_not_trigger_rebuilds(tiny_root):
    settings = Settings.load(
        root=tiny_root, index_dir=tiny_root / "index", agent_files=(TINY_AGENT,)
    )
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    stop = threading.Event()
    reports: list[IndexReport] = []
    thread = threading.Thread(
        target=kb.watch,
        kwargs={
            "debounce_ms": DEBOUNCE_MS,
            "on_rebuild": reports.append,
            "on_error": pytest.fail,
            "stop_event": stop,
        },
        daemon=True,
    )
    thread.start()
    wait_until(lambda: len(reports) == 1, FIRST_BUILD_S)
    time.sleep(4 * DEBOUNCE_MS / 1000)  # the build's own writes must not feed back
    (tiny_root / SERVER).unlink()
    wait_until(lambda: len(reports) >= 2)
    time.sleep(4 * DEBOUNCE_MS / 1000)
    stop.set()
    thread.join(timeout=5)
    assert len(reports) == 2


def test_stop_ends_the_watcher_quickly_and_leaves_the_lock_free(watcher, tiny_settings):
    watcher.stop.set()
    watcher.thread.join(timeout=2)
    assert not watcher.thread.is_alive()
    with index_write_lock(tiny_settings.index_dir, timeout=0):
        pass


# -- the CLI, as a user runs it (real model) ----------------------------------------------


def read_line(stream, timeout: float) -> str:
    """The next line of a subprocess pipe, or fail after `timeout` seconds."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result:
        pytest.fail(f"no output line within {timeout}s")
    return result[0]


@pytest.mark.slow  # long: runs in `make test-rest`
@pytest.mark.timeout(180)
def test_cli_index_watch_prints_a_line_per_rebuild_and_stops_on_ctrl_c(tiny_root, tmp_path):
    index_dir = tmp_path / "index"
    env = {
        **os.environ,
        "BEKB_AGENT_FILES": TINY_AGENT,
        "BEKB_QUERY_BACKEND": "torch",  # no ONNX export: this test is about the loop
    }
    command = [sys.executable, "-m", "bekb", "--root", str(tiny_root), "--index-dir"]
    process = subprocess.Popen(
        [*command, str(index_dir), "index", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=ctrl_c_reaches_child,
    )
    try:
        assert process.stdout is not None
        first = read_line(process.stdout, 120)
        assert "indexed (full rebuild: no index yet): 5 added, 0 changed, 0 removed" in first
        path = tiny_root / CACHING
        path.write_text(path.read_text() + "\nWrite-behind caches batch their writes.\n")
        second = read_line(process.stdout, 60)
        assert "0 added, 1 changed, 0 removed, 4 unchanged" in second
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "stopped watching"
    with index_write_lock(index_dir, timeout=0):
        pass


def test_first_ctrl_c_asks_the_watcher_to_stop_and_a_second_one_interrupts():
    from bekb.cli.index import _stop_on_ctrl_c

    before = signal.getsignal(signal.SIGINT)
    with _stop_on_ctrl_c() as stop:
        signal.raise_signal(signal.SIGINT)  # the rebuild in progress is left to finish
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
