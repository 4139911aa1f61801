"""Optional cross-encoder rerank of the fused candidates (when `rerank_model` is configured)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bekb.domain import Hit
from bekb.errors import EmbeddingError, one_line

# Fused candidates the cross-encoder re-scores; it reads query and passage together, so it is
# the slow step and sees only the head of the list.
RERANK_CANDIDATES = 20


class Reranker:
    """A sentence-transformers CrossEncoder that re-orders hits by (query, passage) relevance."""

    def __init__(self, model: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from sentence_transformers import CrossEncoder

            local = Path(model).expanduser()
            self._model: Any = CrossEncoder(
                str(local) if local.exists() else model, device="cpu", local_files_only=True
            )
        except Exception as exc:
            raise EmbeddingError(f"cannot load rerank model {model!r}: {one_line(exc)}") from exc

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """`hits` re-ordered by the cross-encoder's score (kept in `score` and the explain)."""
        if not hits:
            return []
        scores = self._model.predict([(query, hit.text) for hit in hits], show_progress_bar=False)
        rescored = [
            replace(hit, score=round(float(s), 6), explain=replace(hit.explain, rerank=float(s)))
            for hit, s in zip(hits, scores, strict=True)
        ]
        return sorted(rescored, key=lambda h: -h.score)
