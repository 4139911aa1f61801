"""The query adapter: pseudo-queries, the fit, storage per generation, and its effect."""

from __future__ import annotations

import numpy as np
import pytest

from bekb import KnowledgeBase
from bekb.domain import Chunk
from bekb.retrieval import adapter as adapter_module
from bekb.retrieval.adapter import QueryAdapter, fit, pseudo_queries, stored_adapter


def chunk(ordinal: int, heading: str, text: str) -> Chunk:
    return Chunk(
        id=f"a.md#{ordinal}",
        path="a.md",
        ordinal=ordinal,
        heading=heading,
        start_line=1,
        end_line=9,
        kind="prose",
        text=text,
        context="",
        file_sha256="x",
    )


def test_pseudo_queries_are_each_chunks_heading_and_a_few_of_its_sentences():
    prose = (
        "## Stampede protection\n"
        "Coalesce concurrent misses behind one lock so the origin sees a single request. "
        "Too short. "
        "Expire entries with jitter so that a whole fleet does not refill at once.\n"
        "| a table row | with enough words to count as a sentence here |\n"
        "```python\n"
        "def refill_the_cache_entry_for_this_key(key, loader, ttl, jitter): pass\n"
        "```\n"
        "Measure the hit ratio per key prefix before you tune any time to live.\n"
        "Warm the cache from the access log when a new region comes up for traffic.\n"
    )
    chunks = [chunk(0, "Caching > Stampede protection", prose), chunk(1, "Caching > Overview", "")]

    pairs = pseudo_queries(chunks)

    assert pairs[0] == ("Stampede protection", 0)  # the heading's last part, not the trail
    sentences = [text for text, position in pairs[1:]]
    assert len(sentences) == adapter_module.SENTENCES_PER_CHUNK
    assert all(position == 0 for _, position in pairs)  # "Overview" is one word: no query
    assert "Too short." not in sentences
    assert not any(s.startswith(("|", "```", "#")) for s in sentences)
    # Prose only: a line of fenced code is not a question (4 candidates for 3 places).
    candidates = {
        "Coalesce concurrent misses behind one lock so the origin sees a single request.",
        "Expire entries with jitter so that a whole fleet does not refill at once.",
        "Measure the hit ratio per key prefix before you tune any time to live.",
        "Warm the cache from the access log when a new region comes up for traffic.",
    }
    assert set(sentences) <= candidates
    assert pseudo_queries(chunks) == pairs  # the same corpus always gives the same pairs


def test_fenced_code_and_table_rows_are_never_pseudo_queries():
    text = (
        "| a table row | with enough words in it to pass for a sentence |\n"
        "```python\n"
        "def refill_the_cache_entry_for_this_key(key, loader, ttl, jitter): pass\n"
        "```\n"
        "~~~\n"
        "retry the whole saga from the first step when the broker reconnects\n"
        "~~~\n"
    )
    assert pseudo_queries([chunk(0, "Sagas > Retries and replays", text)]) == [
        ("Retries and replays", 0)
    ]


def test_the_fit_learns_a_mapping_the_model_does_not_have():
    # Queries are their chunks' vectors plus loud noise along 4 fixed directions (what a
    # question says that its passage does not): the fit must learn to turn those down.
    rng = np.random.default_rng(7)
    dims, count = 32, 120
    chunks = _unit(rng.normal(size=(count, dims)))

    def queries(targets: np.ndarray) -> np.ndarray:
        noisy = chunks[targets] + 0.1 * rng.normal(size=(len(targets), dims))
        noisy[:, :4] += rng.normal(size=(len(targets), 4))
        return _unit(noisy).astype(np.float32)

    train = np.repeat(np.arange(count), 4)
    held_out = np.arange(count)
    fitted = QueryAdapter(fit(queries(train), train, chunks.astype(np.float32)), count)
    fresh = queries(held_out)

    def top1(vectors: np.ndarray) -> float:
        return float(np.mean((vectors @ chunks.T).argmax(axis=1) == held_out))

    assert top1(fresh) < 0.65
    assert top1(fitted.apply(fresh)) > 0.8


def test_adapter_bytes_round_trip_and_damage_is_refused():
    matrix = np.eye(4, dtype=np.float32) * 2
    adapter = QueryAdapter(matrix, fitted_chunks=10, changed=3)

    again = QueryAdapter.from_bytes(adapter.to_bytes(), 4)

    assert np.array_equal(again.matrix, matrix)
    assert (again.fitted_chunks, again.changed) == (10, 3)
    with pytest.raises(ValueError, match="another model"):
        QueryAdapter.from_bytes(adapter.to_bytes(), 8)
    with pytest.raises(ValueError, match="damaged"):
        QueryAdapter.from_bytes(adapter.to_bytes()[:-20], 4)
    with pytest.raises(ValueError, match="damaged"):
        QueryAdapter.from_bytes(QueryAdapter(matrix * np.nan, 10).to_bytes(), 4)


def test_the_search_vector_blends_the_query_with_its_adapted_form():
    swap = np.array([[0, 1], [1, 0]], dtype=np.float32)  # maps x to y
    query = np.array([[1.0, 0.0]], dtype=np.float32)

    searched = QueryAdapter(swap, 1).apply(query)[0]

    own = adapter_module.OWN_SHARE
    expected = np.array([own, 1 - own]) / np.hypot(own, 1 - own)
    assert searched == pytest.approx(expected)


def test_indexing_fits_an_adapter_per_generation_and_a_no_op_keeps_it(tiny_kb, hashing_embedder):
    report = tiny_kb.index()
    meta = tiny_kb.store.active()
    adapter = stored_adapter(tiny_kb.store, meta)

    assert adapter is not None and adapter.fitted_chunks == report.chunks
    assert tiny_kb.status().query_adapter is True
    assert not np.allclose(adapter.matrix, np.eye(meta.dimensions))
    # Pseudo-queries went through the model besides the chunks, headings among them.
    assert "Stampede protection" in hashing_embedder.texts
    assert hashing_embedder.calls > report.embedded

    calls = hashing_embedder.calls
    tiny_kb.index()
    assert tiny_kb.store.active() == meta  # a no-op commits nothing new
    assert hashing_embedder.calls == calls


def test_search_scores_chunks_against_the_adapted_query(tiny_kb, hashing_embedder):
    tiny_kb.index()
    adapter = stored_adapter(tiny_kb.store, tiny_kb.store.active())
    query = "compensating action"
    hit = next(h for h in tiny_kb.search(query, k=5) if len(h.chunk_ids) == 1)
    key = tiny_kb.store.active().collection
    (stored,) = tiny_kb.store.get_chunks(key, list(hit.chunk_ids))
    chunk_vector = hashing_embedder.embed([stored.embed_text])[0]
    own = hashing_embedder.embed([query])

    searched = adapter.apply(own)[0]

    assert hit.explain.dense_similarity == pytest.approx(float(chunk_vector @ searched))
    assert hit.explain.dense_similarity != pytest.approx(float(chunk_vector @ own[0]))


def test_a_small_change_carries_the_adapter_forward_and_a_larger_one_refits(
    tiny_kb, tiny_root, monkeypatch
):
    monkeypatch.setattr(adapter_module, "REFIT_SHARE", 0.3)  # the tiny corpus has 15 chunks
    tiny_kb.index()
    first = tiny_kb.store.active()
    fitted = stored_adapter(tiny_kb.store, first)
    auth = tiny_root / "beta/docs/auth.md"
    auth.write_text(auth.read_text().replace("15 minutes", "5 minutes"))

    tiny_kb.index()
    second = tiny_kb.store.active()
    carried = stored_adapter(tiny_kb.store, second)

    assert second.generation == first.generation + 1
    assert np.array_equal(carried.matrix, fitted.matrix)
    # One chunk's text changed: one chunk added and one removed (ids are content digests).
    assert (carried.changed, carried.fitted_chunks) == (2, fitted.fitted_chunks)

    sagas = tiny_root / "alpha/skills/sagas/SKILL.md"
    sections = "".join(
        f"\n## Rule {n}\n\nEvery step {n} gets its own deadline.\n" for n in range(4)
    )
    sagas.write_text(sagas.read_text() + sections)  # 4 new chunks: past 30% with the first 2
    tiny_kb.index()
    third = tiny_kb.store.active()
    refitted = stored_adapter(tiny_kb.store, third)

    assert refitted.changed == 0
    assert not np.array_equal(refitted.matrix, fitted.matrix)
    # The previous generation's adapter stays for searches still on it; older ones go.
    assert stored_adapter(tiny_kb.store, second) is not None
    assert stored_adapter(tiny_kb.store, first) is None


def test_a_corpus_above_the_size_limit_gets_no_adapter_and_still_searches(tiny_kb, monkeypatch):
    monkeypatch.setattr(adapter_module, "MAX_CHUNKS", 5)  # the tiny corpus has 15

    tiny_kb.index()

    assert stored_adapter(tiny_kb.store, tiny_kb.store.active()) is None
    assert tiny_kb.status().query_adapter is False
    assert (
        "## Stampede protection"
        in tiny_kb.search("stampede protection lock coalescing", k=1)[0].text
    )


def test_an_adapter_a_killed_build_left_never_serves_a_later_generation(
    tiny_kb, tiny_settings, hashing_embedder, tiny_root
):
    tiny_kb.index()
    first = tiny_kb.store.active()
    # A build killed after storing the next generation's adapter, before its commit.
    tiny_kb.store.put_adapter(first.collection, first.generation + 1, b"left by a killed build")
    auth = tiny_root / "beta/docs/auth.md"
    auth.write_text(auth.read_text().replace("15 minutes", "5 minutes"))
    kb = KnowledgeBase.open(tiny_settings, embedder=hashing_embedder, query_adapter=False)

    kb.index()

    second = kb.store.active()
    assert second.generation == first.generation + 1
    assert kb.store.adapter(second.collection, second.generation) is None
    assert kb.status().query_adapter is False


def test_with_the_adapter_off_nothing_is_fitted(tiny_settings, hashing_embedder):
    kb = KnowledgeBase.open(tiny_settings, embedder=hashing_embedder, query_adapter=False)

    report = kb.index()

    assert stored_adapter(kb.store, kb.store.active()) is None
    assert hashing_embedder.calls == report.embedded == report.chunks


def test_a_lost_adapter_is_searched_without_and_refitted_by_the_next_index(
    tiny_kb, tiny_settings, hashing_embedder
):
    tiny_kb.index()
    tiny_kb.store.keep_adapters([])  # as if stored by another version, or damaged
    fresh = KnowledgeBase.open(tiny_settings, embedder=hashing_embedder)

    assert fresh.search("compensating action", k=1)
    report = fresh.index()

    assert (report.added, report.changed, report.removed) == (0, 0, 0)
    assert stored_adapter(fresh.store, fresh.store.active()) is not None


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
