"""Reciprocal rank fusion of ranked id lists, keeping each list's rank for the explanation."""

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
