"""Fusing the dense and BM25 candidates: convex combination of normalised scores, or
reciprocal rank fusion; each source's rank is kept for the explanation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# The classic RRF constant (Cormack et al., 2009): damps the head of each list.
RRF_K = 60


@dataclass
class Fused:
    """One id's fused score and its 1-based rank in each source list."""

    id: str
    score: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict)


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[str]],
    *,
    weights: Mapping[str, float] | None = None,
    k: int = RRF_K,
) -> list[Fused]:
    """Fuse named rankings (best first): score = Σ weight / (k + rank). Best first; ties by id."""
    fused: dict[str, Fused] = {}
    for source, ids in rankings.items():
        weight = (weights or {}).get(source, 1.0)
        for rank, item in enumerate(ids, start=1):
            entry = fused.setdefault(item, Fused(item))
            entry.score += weight / (k + rank)
            entry.ranks[source] = rank
    return sorted(fused.values(), key=lambda f: (-f.score, f.id))


def convex_fusion(
    scores: Mapping[str, Mapping[str, float]],
    *,
    weights: Mapping[str, float] | None = None,
    floors: Mapping[str, float] | None = None,
) -> list[Fused]:
    """Fuse named scorings of one candidate set: Σ weight × normalised score.

    Every source must score every candidate (a candidate one retriever missed still gets that
    retriever's real score): unlike rank fusion this keeps how far apart the scores are, so a
    chunk far ahead in one ranking is not outvoted by chunks merely present in both. Each
    source's scores are scaled to [0, 1] from a floor to the best candidate: the source's
    floor in `floors` when it has one (its scale's own minimum; scores below it count as the
    floor), else the lowest candidate (min-max). Ranks kept for the explanation are each
    source's order over the candidates. Best first; ties by id.
    """
    fused: dict[str, Fused] = {}
    for source, by_id in scores.items():
        weight = (weights or {}).get(source, 1.0)
        high = max(by_id.values(), default=0.0)
        low = (floors or {}).get(source, min(by_id.values(), default=0.0))
        span = high - low
        ordered = sorted(by_id.items(), key=lambda item: (-item[1], item[0]))
        for rank, (item, score) in enumerate(ordered, start=1):
            entry = fused.setdefault(item, Fused(item))
            entry.score += weight * (max(score - low, 0.0) / span if span > 0 else 0.0)
            entry.ranks[source] = rank
    return sorted(fused.values(), key=lambda f: (-f.score, f.id))
