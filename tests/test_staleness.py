"""Staleness is always known: `stale()`, stale hits and citations, `refresh` and
`auto_refresh`, and the CLI's one-line warning."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import typer
from cli_support import CliResult, invoke, model_app
from conftest import TINY_AGENT, HashingEmbedder

from bekb import KnowledgeBase, Settings
from bekb.domain import FileStatus
from bekb.indexing import state

SAGAS = "alpha/skills/sagas/SKILL.md"
CACHING = "alpha/skills/caching/SKILL.md"
SERVER = "beta/src/server.py"
NEW = "alpha/skills/sagas/references/retries.md"
ZEBRA = "\n## Zebra lanterns\n\nZebra lanterns light the cache warming path at night.\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.fixture
def kb(tiny_kb: KnowledgeBase) -> KnowledgeBase:
    """The tiny corpus, indexed with the hashing embedder."""
    tiny_kb.index()
    return tiny_kb


def test_a_fresh_index_has_nothing_stale(kb):
    assert kb.stale() == ()


def test_an_edited_file_is_stale_as_changed(kb, tiny_root):
    append(tiny_root / CACHING, ZEBRA)
    assert kb.stale() == (FileStatus(CACHING, "changed", sha256(tiny_root / CACHING)),)


def test_new_and_deleted_files_are_stale(kb, tiny_root):
    old = sha256(tiny_root / SERVER)
    (tiny_root / SERVER).unlink()
    (tiny_root / NEW).write_text("# Retries\n\nRetry a saga step with backoff.\n")
    assert kb.stale() == (
        FileStatus(NEW, "new", sha256(tiny_root / NEW)),
        FileStatus(SERVER, "deleted", old),
    )


def test_a_touched_but_identical_file_is_not_stale(kb, tiny_root):
    path = tiny_root / CACHING
    before = path.stat()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    assert kb.stale() == ()


@pytest.fixture
def read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the staleness check reads from disk, in order."""
    paths: list[str] = []
    real = state.read_source

    def counting(root: Path, path: str) -> object:
        paths.append(path)
        return real(root, path)

    monkeypatch.setattr(state, "read_source", counting)
    return paths


def test_the_check_reads_only_files_whose_size_or_mtime_moved(kb, tiny_root, read):
    assert kb.stale() == ()
    assert read == []

    path = tiny_root / SAGAS
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert kb.stale() == ()
    assert read == [SAGAS]


def test_a_touched_file_found_unchanged_is_not_read_again_until_it_changes(kb, tiny_root, read):
    # A checkout or copy gives every file a new mtime and the same content. Hashing all of
    # them on every search would double a workspace search's time until the next index.
    for path in (tiny_root / CACHING, tiny_root / SAGAS):
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    kb.search("cache stampede")
    assert sorted(read) == [CACHING, SAGAS]
    read.clear()
    hits = kb.search("cache stampede")
    assert hits and not any(h.stale for h in hits)
    assert kb.stale() == ()
    assert read == []

    append(tiny_root / CACHING, ZEBRA)
    assert kb.stale() == (FileStatus(CACHING, "changed", sha256(tiny_root / CACHING)),)
    assert read == [CACHING]


def test_status_reads_the_file_registry_once(kb, tiny_root, monkeypatch):
    # Against a Chroma server every registry read is a round trip over the whole index.
    reads: list[str] = []
    real = kb.store.files

    def counting(key: str) -> object:
        reads.append(key)
        return real(key)

    monkeypatch.setattr(kb.store, "files", counting)
    append(tiny_root / CACHING, ZEBRA)

    status = kb.status()

    assert [f.path for f in status.stale] == [CACHING]
    assert (status.files, len(reads)) == (5, 1)


def test_a_search_reads_the_index_pointer_once(kb, monkeypatch):
    # The staleness check and the search share one snapshot of the committed generation, so
    # the stale marks describe the hits returned, and Chroma is asked once (1.5 ms here).
    reads: list[object] = []
    real = kb.store.active

    def counting() -> object:
        reads.append(real())
        return reads[-1]

    kb.search("saga compensation", k=3)
    monkeypatch.setattr(kb.store, "active", counting)

    assert kb.search("saga compensation", k=3)
    assert len(reads) == 1


def test_search_marks_hits_of_a_changed_file_stale(kb, tiny_root):
    append(tiny_root / CACHING, ZEBRA)
    hits = kb.search("cache lock request saga", k=8)
    paths = {h.path for h in hits}
    assert CACHING in paths
    assert len(paths) > 1
    assert {(h.path, h.stale) for h in hits} == {(p, p == CACHING) for p in paths}
    assert [f.path for f in kb.stale()] == [CACHING]  # searching alone re-indexes nothing


def test_search_leaves_out_a_deleted_file_and_still_returns_k_hits(kb, tiny_root):
    before = kb.search("cache lock request saga", k=4)
    assert CACHING in {h.path for h in before}
    (tiny_root / CACHING).unlink()

    after = kb.search("cache lock request saga", k=4)

    assert CACHING not in {h.path for h in after} and len(after) == 4
    assert [(f.path, f.state) for f in kb.stale()] == [(CACHING, "deleted")]  # still known


def test_a_file_deleted_between_whole_corpus_checks_is_dropped_from_the_hits(kb, tiny_root, clock):
    assert CACHING in {h.path for h in kb.search("cache stampede", k=3)}
    (tiny_root / CACHING).unlink()

    again = kb.search("cache stampede", k=3)  # the same instant: no whole-corpus check

    assert CACHING not in {h.path for h in again}


def test_search_with_refresh_reindexes_first(kb, tiny_root):
    append(tiny_root / CACHING, ZEBRA)
    hits = kb.search("zebra lanterns", k=3, refresh=True)
    # with the fake model the BM25 match can tie with a dense one: among the first, not first
    assert any(h.path == CACHING and "Zebra lanterns light" in h.text for h in hits)
    assert [h for h in hits if h.stale] == []
    assert kb.stale() == ()


def test_auto_refresh_setting_reindexes_before_searching(kb, tiny_settings, tiny_root):
    append(tiny_root / CACHING, ZEBRA)
    auto = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder(), auto_refresh=True)
    hits = auto.search("zebra lanterns", k=3)
    assert any(h.path == CACHING and "Zebra lanterns light" in h.text for h in hits)
    assert [h for h in hits if h.stale] == []
    assert kb.stale() == ()


def test_ask_marks_citations_of_a_changed_file(kb, tiny_root):
    append(tiny_root / SAGAS, "\n## Notes\n\nA saga step may be retried before compensation.\n")
    answer = kb.ask("how does a saga compensate a failed step", use_llm=False)
    assert answer.mode == "extractive"
    cited = {c.path for c in answer.citations}
    assert SAGAS in cited
    assert {(c.path, c.stale) for c in answer.citations} == {(p, p == SAGAS) for p in cited}


def test_ask_with_refresh_cites_nothing_stale(kb, tiny_root):
    append(tiny_root / SAGAS, "\n## Notes\n\nA saga step may be retried before compensation.\n")
    answer = kb.ask("how does a saga compensate a failed step", use_llm=False, refresh=True)
    assert answer.mode == "extractive"
    assert SAGAS in {c.path for c in answer.citations}
    assert [c for c in answer.citations if c.stale] == []
    assert kb.stale() == ()


# -- the CLI, as a user runs it (real model, in process) -----------------------------------

WARNING = (
    "warning: 1 file(s) changed since the last index; answers may quote old text "
    "(run `bekb index`, or pass --refresh)"
)


def bekb(app: typer.Typer, root: Path, index_dir: Path, *args: str) -> CliResult:
    command = ["--root", root, "--index-dir", index_dir, *args]
    return invoke(app, command, env={"BEKB_AGENT_FILES": TINY_AGENT})


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@pytest.mark.slow  # long: runs in `make test-rest`
def test_cli_warns_once_when_stale_and_refresh_brings_the_index_up_to_date(
    tiny_root, tmp_path, real_embedder
):
    app = model_app(real_embedder)
    index_dir = tmp_path / "index"
    built = bekb(app, tiny_root, index_dir, "index", "--json")
    assert built.code == 0, built.err
    append(tiny_root / CACHING, ZEBRA)

    searched = bekb(app, tiny_root, index_dir, "search", "cache stampede", "--json")
    assert searched.code == 0, searched.err
    assert warnings(searched.err) == [WARNING]
    hits = json.loads(searched.out)["hits"]
    assert CACHING in {h["path"] for h in hits}
    assert {(h["path"], h["stale"]) for h in hits} == {
        (h["path"], h["path"] == CACHING) for h in hits
    }

    question = "zebra lanterns cache warming"
    asked = bekb(app, tiny_root, index_dir, "ask", question, "--no-llm", "--refresh", "--json")
    assert asked.code == 0, asked.err
    assert warnings(asked.err) == []
    answer = json.loads(asked.out)
    assert answer["mode"] == "extractive"
    assert answer["citations"][0]["path"] == CACHING
    assert [c for c in answer["citations"] if c["stale"]] == []
    settings = Settings.load(root=tiny_root, index_dir=index_dir, agent_files=(TINY_AGENT,))
    assert KnowledgeBase.open(settings, embedder=real_embedder).stale() == ()


def test_status_says_a_changed_setting_will_rebuild_and_the_index_says_why_it_did(
    kb, hashing_embedder
):
    assert kb.status().rebuild_pending is None
    rechunked = KnowledgeBase.open(kb.settings, embedder=hashing_embedder, chunk_tokens=40)

    pending = rechunked.status().rebuild_pending
    report = rechunked.index()

    assert pending == "the chunking changed (chunk_tokens or the chunker version)"
    assert (report.full_rebuild, report.rebuild_reason) == (True, pending)
    assert rechunked.status().rebuild_pending is None
    assert kb.index(full=True).rebuild_reason == "asked for"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A clock the freshness checks read instead of time.monotonic (advance it by hand)."""
    import time
    import types

    from bekb.indexing import freshness

    now = [time.monotonic()]  # not before what fixtures set up already saw
    monkeypatch.setattr(freshness, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_a_hit_is_marked_stale_at_once_between_whole_corpus_checks(kb, tiny_root, clock, read):
    first = kb.search("cache stampede", k=3)
    assert CACHING in {h.path for h in first} and not any(h.stale for h in first)
    append(tiny_root / CACHING, ZEBRA)

    again = kb.search("cache stampede", k=3)  # the same instant: no whole-corpus check

    assert {(h.path, h.stale) for h in again} == {(h.path, h.path == CACHING) for h in again}
    assert read == [CACHING]  # only the returned files were compared, and only it was read


def test_a_change_elsewhere_is_seen_once_the_recheck_interval_passes(
    kb, tiny_settings, tiny_root, clock
):
    from bekb.indexing.freshness import RECHECK_SECONDS

    auto = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder(), auto_refresh=True)
    auto.search("cache stampede", k=1)
    (tiny_root / NEW).write_text("# Retries\n\nZebra lanterns retry a saga step.\n")

    clock[0] += RECHECK_SECONDS
    hits = auto.search("zebra lanterns", k=3)

    assert NEW in {h.path for h in hits}
    assert auto.stale() == ()


def test_refresh_compares_the_whole_corpus_even_between_checks(kb, tiny_root, clock):
    kb.search("cache stampede", k=1)
    (tiny_root / NEW).write_text("# Retries\n\nZebra lanterns retry a saga step.\n")

    hits = kb.search("zebra lanterns", k=3, refresh=True)  # the same instant

    assert NEW in {h.path for h in hits}
