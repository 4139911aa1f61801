"""Lexical ranking: BM25 (bm25s) over chunk texts, saved beside the index and memory-mapped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STOPWORDS = "english"


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokenize(texts: Sequence[str], *, ids: bool) -> Any:
    import bm25s

    return bm25s.tokenize(
        list(texts), stopwords=STOPWORDS, stemmer=_stemmer(), show_progress=False, return_ids=ids
    )


class KeywordIndex:
    """BM25 over a fixed list of chunks; `search` returns chunk ids with their scores."""

    def __init__(self, chunk_ids: Sequence[str], model: Any) -> None:
        self.chunk_ids = list(chunk_ids)
        self._model = model

    @classmethod
    def build(cls, chunk_ids: Sequence[str], texts: Sequence[str]) -> KeywordIndex:
        """Index `texts` (one per chunk id)."""
        import bm25s

        model = bm25s.BM25()
        if texts:
            model.index(_tokenize(texts, ids=True), show_progress=False)
        return cls(chunk_ids, model)

    def save(self, folder: Path) -> None:
        """Write the index to `folder` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.chunk_ids:
            self._model.save(str(folder), show_progress=False)
        (folder / "chunk_ids.json").write_text(json.dumps(self.chunk_ids))

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        """Read an index written by `save` (memory-mapped)."""
        import bm25s

        chunk_ids = json.loads((folder / "chunk_ids.json").read_text())
        model = (
            bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
            if chunk_ids
            else bm25s.BM25()
        )
        return cls(chunk_ids, model)

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        """Up to `n` (chunk id, score) pairs with a positive score, best first."""
        if not self.chunk_ids:
            return []
        tokens = _tokenize([query], ids=False)
        if not tokens or not tokens[0]:
            return []
        docs, scores = self._model.retrieve(
            tokens, k=min(n, len(self.chunk_ids)), show_progress=False, n_threads=1
        )
        return [
            (self.chunk_ids[int(d)], float(s))
            for d, s in zip(docs[0], scores[0], strict=True)
            if s > 0
        ]
