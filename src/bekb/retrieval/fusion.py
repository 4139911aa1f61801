"""Fusing the dense and BM25 candidates: convex combination of normalised scores, or
reciprocal rank fusion; each source's rank is kept for the explanation. Also the fusion of
whole searches (the question's and its rewrites', for query expansion)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from bekb.domain import Hit

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


# How much the question's own ranking counts against each rewrite's (query expansion).
QUESTION_WEIGHT = 2.0
# A rewrite the corpus matches less closely than the question itself: half a vote.
WEAKER_REWRITE_WEIGHT = 0.5


def run_weights(question_similarity: float, rewrite_similarities: Sequence[float]) -> list[float]:
    """RRF weights for the question's ranking and each rewrite's, from how closely the
    corpus matches each (the nearest passage's cosine similarity).

    The question counts double, so what it finds well is not pushed down by rewrites that
    merely agree on something else; a rewrite earns a full vote only when the corpus answers
    it more closely than the question (a paraphrase put in the documents' own terms).
    """
    return [QUESTION_WEIGHT] + [
        1.0 if s > question_similarity else WEAKER_REWRITE_WEIGHT for s in rewrite_similarities
    ]


def fuse_runs(
    runs: Sequence[Sequence[Hit]], weights: Sequence[float], *, k: int = RRF_K
) -> list[Hit]:
    """Hits of several searches, fused by weighted reciprocal rank, best first.

    Passages of different runs that share a chunk are one passage: it takes the text and
    lines of the first run that found it (the question's own, when it did), and each run
    counts once for it, at its best rank. Its score becomes the fused score.
    """
    passages: list[tuple[Hit, set[str]]] = []
    scores: list[float] = []
    for hits, weight in zip(runs, weights, strict=True):
        counted: set[int] = set()
        for rank, hit in enumerate(hits, start=1):
            ids = set(hit.chunk_ids) or {hit.location}
            at = next((i for i, (_, seen) in enumerate(passages) if seen & ids), None)
            if at is None:
                at = len(passages)
                passages.append((hit, set()))
                scores.append(0.0)
            passages[at][1].update(ids)
            if at not in counted:
                counted.add(at)
                scores[at] += weight / (k + rank)
    order = sorted(range(len(passages)), key=lambda i: -scores[i])
    return [replace(passages[i][0], score=scores[i]) for i in order]
