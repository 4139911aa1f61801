"""BM25 keyword index: identifier splitting, vocabulary coverage, save and load."""

from __future__ import annotations

from bekb.retrieval.bm25 import KeywordIndex, with_identifier_parts

TEXTS = {
    "cb": "class CircuitBreaker:\n    success_threshold: int = 2\n",
    "saga": "A saga compensates completed steps when a later step fails.",
    "cache": "Cache-aside reads the cache first and loads from the database on a miss.",
}


def build() -> KeywordIndex:
    return KeywordIndex.build(list(TEXTS), list(TEXTS.values()))


def test_identifiers_are_also_indexed_as_their_words():
    assert with_identifier_parts("success_threshold sagaStore") == (
        "success_threshold sagaStore\nsuccess threshold saga Store"
    )


def test_a_question_in_words_finds_the_snake_case_identifier():
    assert [cid for cid, _ in build().search("success threshold", 3)] == ["cb"]


def test_search_returns_only_positive_scores_best_first():
    hits = build().search("saga compensates failed steps", 3)
    assert [cid for cid, _ in hits] == ["saga"]
    assert hits[0][1] > 0


def test_a_query_of_stopwords_only_finds_nothing():
    assert build().search("how do I do it", 3) == []


def test_coverage_is_the_share_of_query_terms_the_documents_use():
    index = build()
    assert index.coverage("saga cache") == 1.0
    assert index.coverage("saga kerberos") == 0.5
    assert index.coverage("knitting") == 0.0


def test_save_and_load_give_the_same_results(tmp_path):
    index = build()
    index.save(tmp_path / "kw")
    loaded = KeywordIndex.load(tmp_path / "kw")
    assert loaded.chunk_ids == index.chunk_ids
    assert loaded.vocabulary == index.vocabulary
    assert loaded.search("database miss", 3) == index.search("database miss", 3)


def test_an_empty_index_searches_to_nothing(tmp_path):
    empty = KeywordIndex.build([], [])
    empty.save(tmp_path / "kw")
    assert KeywordIndex.load(tmp_path / "kw").search("saga", 5) == []
    assert empty.coverage("saga") == 0.0


def test_scores_gives_any_chunk_its_score_even_outside_the_top_n(tmp_path):
    index = build()
    index.save(tmp_path / "kw")
    loaded = KeywordIndex.load(tmp_path / "kw")  # memory-mapped, as searches use it
    query = "saga steps read the cache"
    ranked = dict(index.search(query, 3))

    scores = loaded.scores(query, ["cache", "saga", "cb", "unknown-id"])

    assert scores == {cid: ranked.get(cid, 0.0) for cid in ("cache", "saga", "cb")}
    assert scores["saga"] > 0 and scores["cache"] > 0 and scores["cb"] == 0.0
    assert loaded.scores("how do I do it", ["saga"]) == {"saga": 0.0}
    assert KeywordIndex.build([], []).scores("saga", ["saga"]) == {}
