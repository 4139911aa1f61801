"""Fusion: reciprocal rank fusion and convex score fusion (scores, ranks per source, ties)."""

from __future__ import annotations

import pytest

from bekb.retrieval.fusion import RRF_K, Fused, convex_fusion, reciprocal_rank_fusion


def test_fused_score_is_the_sum_of_reciprocal_ranks_with_each_source_rank_kept():
    fused = reciprocal_rank_fusion({"dense": ["a", "b"], "bm25": ["b", "c"]})
    assert fused == [
        Fused("b", 1 / (RRF_K + 2) + 1 / (RRF_K + 1), {"dense": 2, "bm25": 1}),
        Fused("a", 1 / (RRF_K + 1), {"dense": 1}),
        Fused("c", 1 / (RRF_K + 2), {"bm25": 2}),
    ]


def test_weights_scale_each_source():
    fused = reciprocal_rank_fusion({"dense": ["a"], "bm25": ["b"]}, weights={"bm25": 2.0})
    assert [f.id for f in fused] == ["b", "a"]
    assert fused[0].score == pytest.approx(2 / (RRF_K + 1))


def test_ties_are_broken_by_id_so_results_are_deterministic():
    fused = reciprocal_rank_fusion({"dense": ["z"], "bm25": ["a"]})
    assert [f.id for f in fused] == ["a", "z"]


def test_empty_rankings_fuse_to_nothing():
    assert reciprocal_rank_fusion({"dense": [], "bm25": []}) == []


def test_convex_fusion_adds_min_max_normalised_scores_with_weights():
    fused = convex_fusion(
        {"dense": {"a": 0.9, "b": 0.5, "c": 0.1}, "bm25": {"a": 0.0, "b": 10.0, "c": 5.0}},
        weights={"dense": 0.6, "bm25": 0.4},
    )
    assert [f.id for f in fused] == ["b", "a", "c"]
    by_id = {f.id: f for f in fused}
    assert by_id["a"].score == pytest.approx(0.6)
    assert by_id["b"].score == pytest.approx(0.6 * 0.5 + 0.4)
    assert by_id["c"].score == pytest.approx(0.4 * 0.5)
    assert by_id["b"].ranks == {"dense": 2, "bm25": 1}


def test_convex_fusion_keeps_the_distance_rank_fusion_throws_away():
    # "a" is far ahead in dense and third in BM25; "b" is barely second in dense, first in BM25.
    scores = {
        "dense": {"a": 0.95, "b": 0.41, "c": 0.40, "d": 0.39},
        "bm25": {"a": 1.1, "b": 1.2, "c": 1.15, "d": 1.0},
    }
    assert convex_fusion(scores)[0].id == "a"
    assert (
        reciprocal_rank_fusion(
            {source: sorted(by, key=by.__getitem__, reverse=True) for source, by in scores.items()}
        )[0].id
        != "a"
    )


def test_convex_fusion_of_a_source_that_does_not_discriminate_adds_nothing():
    fused = convex_fusion({"dense": {"a": 0.2, "b": 0.7}, "bm25": {"a": 3.0, "b": 3.0}})
    assert [(f.id, f.score) for f in fused] == [("b", 1.0), ("a", 0.0)]
    assert convex_fusion({"dense": {}, "bm25": {}}) == []


def test_convex_fusion_scales_a_source_with_a_floor_from_that_floor():
    scores = {"dense": {"a": 0.2, "b": 0.1, "c": -0.05}, "bm25": {"a": 1.0, "b": 5.0, "c": 0.0}}
    fused = convex_fusion(scores, weights={"dense": 0.6, "bm25": 0.4}, floors={"dense": 0.0})
    by_id = {f.id: f.score for f in fused}
    assert by_id["a"] == pytest.approx(0.6 * 1.0 + 0.4 * 0.2)
    assert by_id["b"] == pytest.approx(0.6 * 0.5 + 0.4 * 1.0)
    assert by_id["c"] == pytest.approx(0.0)  # below the floor counts as the floor


def test_a_floor_keeps_uniformly_weak_similarities_from_outvoting_a_strong_keyword_match():
    # Every dense similarity is weak and close together; "b" alone matches the query's words.
    scores = {"dense": {"a": 0.19, "b": 0.15, "c": 0.14}, "bm25": {"a": 4.0, "b": 10.0, "c": 0.0}}
    weights = {"dense": 0.6, "bm25": 0.4}
    assert convex_fusion(scores, weights=weights)[0].id == "a"
    assert convex_fusion(scores, weights=weights, floors={"dense": 0.0})[0].id == "b"
