"""Reciprocal rank fusion: scores, ranks per source, ties."""

from __future__ import annotations

import pytest

from bekb.retrieval.fusion import RRF_K, Fused, reciprocal_rank_fusion


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
