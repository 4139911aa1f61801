"""Incremental indexing: only what changed is chunked and embedded; nothing is ever mixed."""

from __future__ import annotations

import pytest
from conftest import TINY_AGENT, HashingEmbedder, assert_consistent, deny_reading, store_state

from bekb import ConfigError, IndexLockedError, IndexNotBuiltError, KnowledgeBase, Settings
from bekb.indexing.lock import index_write_lock

TINY_FILES = [
    "alpha/skills/caching/SKILL.md",
    "alpha/skills/sagas/SKILL.md",
    "alpha/skills/sagas/references/details.md",
    "beta/docs/auth.md",
    "beta/src/server.py",
]


def chunks_only(settings: Settings, embedder: HashingEmbedder) -> KnowledgeBase:
    """A knowledge base that embeds chunks only: no query adapter, whose pseudo-queries would
    add model calls (counted in tests/retrieval/test_adapter.py)."""
    return KnowledgeBase.open(settings, embedder=embedder, query_adapter=False)


def test_first_index_embeds_every_chunk_of_the_cited_files(tiny_settings, hashing_embedder):
    tiny_kb = chunks_only(tiny_settings, hashing_embedder)
    report = tiny_kb.index()
    registry, _ = store_state(tiny_kb)
    assert sorted(registry) == TINY_FILES
    assert (report.added, report.changed, report.removed, report.unchanged) == (5, 0, 0, 0)
    assert report.chunks == sum(len(ids) for ids in registry.values())
    assert report.embedded == hashing_embedder.calls == report.chunks
    assert report.cached == 0
    assert report.unresolved == ("gamma/src/stream.rs",)
    assert [r.path for r in report.refused] == ["../outside/secrets.md"]
    assert_consistent(tiny_kb)


def test_second_run_is_a_no_op(tiny_kb, hashing_embedder):
    first = tiny_kb.index()
    calls = hashing_embedder.calls
    second = tiny_kb.index()
    assert (second.added, second.changed, second.removed, second.unchanged) == (0, 0, 0, 5)
    assert (second.embedded, second.cached) == (0, 0)
    assert second.chunks == first.chunks
    assert hashing_embedder.calls == calls
    assert not second.full_rebuild


def test_editing_one_file_re_embeds_only_its_changed_chunks(
    tiny_settings, tiny_root, hashing_embedder
):
    tiny_kb = chunks_only(tiny_settings, hashing_embedder)
    tiny_kb.index()
    before, _ = store_state(tiny_kb)
    path = tiny_root / "beta/docs/auth.md"
    path.write_text(path.read_text().replace("15 minutes", "5 minutes"))
    hashing_embedder.texts.clear()
    calls = hashing_embedder.calls

    report = tiny_kb.index()

    after, _ = store_state(tiny_kb)
    assert (report.added, report.changed, report.removed, report.unchanged) == (0, 1, 0, 4)
    changed_ids = set(after["beta/docs/auth.md"]) - set(before["beta/docs/auth.md"])
    assert report.embedded == hashing_embedder.calls - calls == len(changed_ids) == 1
    assert all("5 minutes" in text for text in hashing_embedder.texts)
    assert report.cached == len(after["beta/docs/auth.md"]) - 1
    assert {p: ids for p, ids in after.items() if p != "beta/docs/auth.md"} == {
        p: ids for p, ids in before.items() if p != "beta/docs/auth.md"
    }
    assert_consistent(tiny_kb)


def test_deleting_a_file_removes_its_chunks_from_chroma(tiny_kb, tiny_root):
    tiny_kb.index()
    gone, _ = store_state(tiny_kb)
    (tiny_root / "alpha/skills/sagas/references/details.md").unlink()

    report = tiny_kb.index()

    registry, in_store = store_state(tiny_kb)
    assert report.removed == 1
    assert "alpha/skills/sagas/references/details.md" not in registry
    assert not set(gone["alpha/skills/sagas/references/details.md"]) & in_store
    assert all("details.md" not in hit.path for hit in tiny_kb.search("saga timeouts", k=10))
    assert_consistent(tiny_kb)


def test_renamed_file_costs_no_model_calls(tiny_kb, tiny_root, hashing_embedder):
    tiny_kb.index()
    calls = hashing_embedder.calls
    folder = tiny_root / "alpha/skills/sagas/references"
    (folder / "details.md").rename(folder / "more.md")
    # the context header includes the path only for code, so Markdown text is unchanged
    report = tiny_kb.index()
    assert (report.added, report.removed) == (1, 1)
    assert report.embedded == 0 == hashing_embedder.calls - calls
    assert_consistent(tiny_kb)


def test_a_different_model_rebuilds_from_scratch_and_never_mixes(tiny_settings, tiny_kb):
    tiny_kb.index()
    old = tiny_kb.store.active()

    class OtherModel(HashingEmbedder):
        model_id = "test/other-model"
        dimensions = 32

    other = OtherModel()
    kb = chunks_only(tiny_settings, other)
    report = kb.index()

    new = kb.store.active()
    assert report.full_rebuild
    assert report.embedded == other.calls == report.chunks
    assert new is not None and old is not None
    assert new.fingerprint != old.fingerprint
    assert new.embed_model == "test/other-model"
    assert new.dimensions == 32
    assert kb.store.collection_keys() == [new.collection]
    assert kb.search("compensating action", k=1)
    assert_consistent(kb)


def test_full_rebuild_reuses_cached_embeddings(tiny_kb, hashing_embedder):
    first = tiny_kb.index()
    calls = hashing_embedder.calls
    report = tiny_kb.index(full=True)
    assert report.full_rebuild
    assert (report.embedded, report.cached) == (0, first.chunks)
    assert hashing_embedder.calls == calls
    assert len(tiny_kb.store.collection_keys()) == 1
    assert_consistent(tiny_kb)


def test_unusable_files_are_skipped_with_a_reason_and_the_rest_indexes(tiny_kb, tiny_root):
    folder = tiny_root / "alpha/skills/sagas/references"
    (folder / "diagram.md").write_bytes(b"\x89PNG\x00\x00binary")
    (folder / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    (folder / "empty.md").write_text("")

    report = tiny_kb.index()

    assert sorted((s.path.rsplit("/", 1)[1], s.reason) for s in report.skipped) == [
        ("diagram.md", "binary file (contains NUL bytes)"),
        ("latin1.md", "not valid UTF-8 (byte 3)"),
    ]
    registry, _ = store_state(tiny_kb)
    assert sorted(registry) == sorted([*TINY_FILES, "alpha/skills/sagas/references/empty.md"])
    assert registry["alpha/skills/sagas/references/empty.md"] == ()


def test_a_file_that_turns_unreadable_keeps_its_indexed_chunks(
    tiny_kb, tiny_root, monkeypatch: pytest.MonkeyPatch
):
    tiny_kb.index()
    before, _ = store_state(tiny_kb)
    target = tiny_root / "beta/docs/auth.md"
    deny_reading(monkeypatch, target)
    report = tiny_kb.index()

    assert [(s.path, s.reason) for s in report.skipped] == [
        ("beta/docs/auth.md", "unreadable (permission denied)")
    ]
    assert store_state(tiny_kb)[0] == before
    assert report.removed == 0


def test_bad_root_is_a_config_error_and_the_index_is_untouched(tiny_kb, tiny_settings, tmp_path):
    tiny_kb.index()
    before = store_state(tiny_kb)
    broken = KnowledgeBase.open(
        Settings.load(
            root=tmp_path / "nope", index_dir=tiny_settings.index_dir, agent_files=(TINY_AGENT,)
        )
    )
    with pytest.raises(ConfigError, match="does not exist"):
        broken.index()
    assert store_state(tiny_kb) == before


def test_search_before_the_first_index_says_to_run_index(tiny_kb):
    with pytest.raises(IndexNotBuiltError, match="run `bekb index`"):
        tiny_kb.search("sagas")


def test_a_second_writer_fails_clearly_after_the_lock_timeout(tiny_settings, hashing_embedder):
    kb = KnowledgeBase.open(tiny_settings, embedder=hashing_embedder, lock_timeout=0.2)
    with (
        index_write_lock(tiny_settings.index_dir, timeout=1),
        pytest.raises(IndexLockedError, match="another `bekb index` holds"),
    ):
        kb.index()
    assert kb.index().added == 5  # the lock is free again


def test_an_edit_makes_keyword_terms_for_its_new_chunks_only_and_ranks_as_a_full_build(
    tiny_settings, tiny_root, hashing_embedder, monkeypatch
):
    from bekb.indexing import indexer
    from bekb.retrieval.bm25 import KeywordIndex

    tiny_kb = chunks_only(tiny_settings, hashing_embedder)
    tiny_kb.index()
    before, _ = store_state(tiny_kb)
    path = tiny_root / "beta/docs/auth.md"
    path.write_text(path.read_text().replace("15 minutes", "5 minutes"))
    tokenised: list[int] = []
    real = indexer.chunk_terms
    monkeypatch.setattr(
        indexer, "chunk_terms", lambda texts: tokenised.append(len(texts)) or real(texts)
    )

    tiny_kb.index()

    after, _ = store_state(tiny_kb)
    new_chunks = set(after["beta/docs/auth.md"]) - set(before["beta/docs/auth.md"])
    assert tokenised == [len(new_chunks)] == [1]  # the others' terms came from the cache
    meta = tiny_kb.store.active()
    chunks = tiny_kb.store.get_chunks(meta.collection)
    from_texts = KeywordIndex.build([c.id for c in chunks], [c.embed_text for c in chunks])
    served = tiny_kb._retrieval().snapshot().keywords
    for query in ("token expiry 5 minutes", "saga compensation", "cache stampede lock"):
        assert served.search(query, 5) == from_texts.search(query, 5)
    assert (served.vocabulary, served.identifiers) == (
        from_texts.vocabulary,
        from_texts.identifiers,
    )
