"""Hybrid retrieval: abstention signals, search over a real index."""

from __future__ import annotations

import pytest

from bekb import KnowledgeBase
from bekb.domain import Hit
from bekb.retrieval import retriever
from bekb.retrieval.retriever import SearchResult


def test_off_topic_needs_both_low_similarity_and_unknown_words():
    hit = Hit("a.md", "Sagas", 1, 4, "part 1\n", 0.1)

    def result(similarity: float, coverage: float) -> SearchResult:
        return SearchResult((hit,), similarity, coverage)

    limits = {"min_similarity": 0.4, "min_coverage": 0.8}
    assert result(0.3, 0.5).off_topic(**limits)
    assert not result(0.3, 1.0).off_topic(**limits)  # terse but on-topic words
    assert not result(0.6, 0.5).off_topic(**limits)  # paraphrase with unusual words
    assert SearchResult((), 0.9, 1.0).off_topic(**limits)


@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_search_finds_the_section_that_answers(tiny_settings, hashing_embedder, fusion):
    kb = KnowledgeBase.open(tiny_settings, embedder=hashing_embedder, fusion=fusion)
    kb.index()
    hits = kb.search("stampede protection lock coalescing", k=3)
    assert hits[0].path == "alpha/skills/caching/SKILL.md"
    # The section ranked first; the document's short opening, ranked next, joined it.
    assert hits[0].explain.bm25_rank == 1
    assert "## Stampede protection\n" in hits[0].text
    assert hits[0].heading == "Caching"


def test_score_fusion_gives_every_candidate_both_retrievers_scores(
    tiny_settings, hashing_embedder, monkeypatch
):
    # With 3 candidates per retriever, dense and BM25 find different chunks; each must still
    # be scored by the other: a BM25-only chunk gets its stored vector's real similarity.
    # (The query adapter off: the disagreement is staged for the model's own query vector.)
    monkeypatch.setattr(retriever, "CANDIDATES", 3)
    tiny_kb = KnowledgeBase.open(tiny_settings, embedder=hashing_embedder, query_adapter=False)
    tiny_kb.index()
    query = "def handler cache stampede"
    hits = tiny_kb.search(query, k=10)
    key = tiny_kb.store.active().collection
    chunks = {c.id: c for c in tiny_kb.store.get_chunks(key)}
    query_vector = hashing_embedder.embed([query])[0]

    beyond_dense = [h for h in hits if h.explain.dense_rank > 3]
    assert beyond_dense, "expected a chunk only BM25 found"
    for hit in hits:
        assert hit.explain.bm25_rank is not None
        if len(hit.chunk_ids) == 1:
            vector = hashing_embedder.embed([chunks[hit.chunk_ids[0]].embed_text])[0]
            assert hit.explain.dense_similarity == pytest.approx(float(vector @ query_vector))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_an_unreadable_candidate_vector_falls_back_to_rank_fusion(
    tiny_settings, hashing_embedder, monkeypatch
):
    # A vector another process wrote after this one loaded Chroma's vector index cannot be
    # read; its similarity is unknown, so the query is ranked by rank fusion, not guessed.
    monkeypatch.setattr(retriever, "CANDIDATES", 3)
    query = "def handler cache stampede"
    plain = {"embedder": hashing_embedder, "query_adapter": False}  # as in the test above
    by_rank = KnowledgeBase.open(tiny_settings, fusion="rrf", **plain)
    by_rank.index()
    kb = KnowledgeBase.open(tiny_settings, **plain)
    real = kb.store.readable_vectors
    monkeypatch.setattr(kb.store, "readable_vectors", lambda key, ids: real(key, list(ids)[1:]))

    hits = kb.search(query, k=10)

    assert [(h.path, h.start_line, h.score) for h in hits] == [
        (h.path, h.start_line, h.score) for h in by_rank.search(query, k=10)
    ]
    assert any(h.explain.dense_rank is None for h in hits)


def test_search_on_the_real_corpus_puts_the_saga_skill_first(cited_kb):
    hits = cited_kb.search("how do I do sagas", k=5)
    assert hits[0].path.startswith("agents/plugins/backend-development/skills/saga-orchestration/")
    assert all(h.explain.fused > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
