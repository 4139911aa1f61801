"""Lexical ranking: BM25 (bm25s) over chunk texts, saved beside the index and memory-mapped.

This module owns the keyword index's files too: where a generation's index lives
(`keyword_folder`), how it is written (whole or not at all) and how it is read back verified.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bekb.files import NUMPY_LOADING, atomic_folder
from bekb.retrieval.terms import Term, identifiers

STOPWORDS = "english"
CHECKSUMS = "bekb-checksums.json"
# Bump when tokenisation changes: saved keyword indexes of another version are rebuilt.
KEYWORD_VERSION = 4


@functools.cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


# A word as bm25s tokenises one: two or more word characters.
WORD = re.compile(r"(?u)\b\w\w+\b")


@functools.lru_cache(maxsize=65536)
def word_stem(word: str) -> str:
    """A word as the keyword index matches it: lower-cased and stemmed."""
    return str(_stemmer().stemWord(word.lower()))


def query_stems(query: str) -> frozenset[str]:
    """The stems the keyword index matches a query by (stopwords dropped, identifiers also
    split into their words)."""
    words = WORD.findall(with_identifier_parts(query).lower())
    return frozenset(word_stem(w) for w in words if w not in _stopwords())


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def with_identifier_parts(text: str) -> str:
    """`text` followed by its identifiers split into words (`page_size` → `page size`).

    Code and config in skill documents name things `success_threshold` or `sagaStore`; a
    question says "success threshold". Keeping the whole identifier too lets an exact
    identifier query still match best.
    """
    parts = _CAMEL.sub(" ", text).replace("_", " ").replace("-", " ")
    return f"{text}\n{parts}"


def _tokenize(texts: Sequence[str], *, ids: bool, split: bool = True) -> Any:
    import bm25s

    return bm25s.tokenize(
        [with_identifier_parts(t) for t in texts] if split else list(texts),
        stopwords=STOPWORDS,
        stemmer=_stemmer(),
        show_progress=False,
        return_ids=ids,
    )


@dataclass(frozen=True)
class ChunkTerms:
    """What the keyword index takes from one chunk's text: its BM25 tokens (stemmed,
    stopwords dropped, identifiers also split into their words), the stems of its words as
    written (no identifier split), and its identifier-shaped words."""

    tokens: tuple[str, ...]
    words: frozenset[str]
    names: frozenset[str]

    def to_bytes(self) -> bytes:
        """A compact stored form (`from_bytes` reads it back)."""
        fields_ = [list(self.tokens), sorted(self.words), sorted(self.names)]
        return zlib.compress(json.dumps(fields_).encode("utf-8"))

    @classmethod
    def from_bytes(cls, data: bytes) -> ChunkTerms:
        """Read what `to_bytes` wrote; ValueError when it is damaged."""
        try:
            tokens, words, names = json.loads(zlib.decompress(data))
        except (zlib.error, TypeError) as exc:
            raise ValueError("damaged chunk terms") from exc
        return cls(tuple(map(sys.intern, tokens)), frozenset(words), frozenset(names))


def chunk_terms(texts: Sequence[str]) -> list[ChunkTerms]:
    """The keyword terms of each text (tokens interned: a corpus repeats them endlessly, and
    one string per occurrence cost ~50 bytes a token at 10x the workspace)."""
    if not texts:
        return []
    tokens = _tokenize(texts, ids=False)
    words = _tokenize(texts, ids=False, split=False)
    return [
        ChunkTerms(tuple(map(sys.intern, t)), frozenset(w), frozenset(identifiers(text)))
        for t, w, text in zip(tokens, words, texts, strict=True)
    ]


class KeywordIndex:
    """BM25 over a fixed list of chunks; `search` returns chunk ids with their scores."""

    def __init__(
        self,
        chunk_ids: Sequence[str],
        model: Any,
        vocabulary: set[str],
        identifiers: set[str] | None = None,
    ) -> None:
        self.chunk_ids = list(chunk_ids)
        self._position = {cid: i for i, cid in enumerate(self.chunk_ids)}
        self._model = model
        # Words the documents use as written (identifier parts excluded): what `coverage`
        # and `lacks` check a question against.
        self.vocabulary = vocabulary
        # Identifier-shaped words the documents use (`router.yaml`, `pg_repack`), lower-cased.
        self.identifiers = identifiers or set()
        self._last_scores: tuple[str, Any] | None = None

    @classmethod
    def build(cls, chunk_ids: Sequence[str], texts: Sequence[str]) -> KeywordIndex:
        """Index `texts` (one per chunk id)."""
        return cls.from_terms(zip(chunk_ids, chunk_terms(texts), strict=True))

    @classmethod
    def from_terms(cls, terms: Iterable[tuple[str, ChunkTerms]]) -> KeywordIndex:
        """Index chunks by their terms ((chunk id, terms) pairs): what an index run does,
        with the terms of chunks it has seen before taken from its cache. Only the tokens of
        each are kept while indexing (`terms` may be a generator)."""
        import bm25s

        chunk_ids: list[str] = []
        tokens: list[list[str]] = []
        words: set[str] = set()
        named: set[str] = set()
        for chunk_id, chunk in terms:
            chunk_ids.append(chunk_id)
            tokens.append(list(chunk.tokens))
            words |= chunk.words
            named |= chunk.names
        model = bm25s.BM25()
        if tokens:
            model.index(tokens, show_progress=False)
        return cls(chunk_ids, model, words, named)

    def save(self, folder: Path) -> None:
        """Write the index to `folder` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.chunk_ids:
            self._model.save(str(folder), show_progress=False)
        (folder / "chunk_ids.json").write_text(json.dumps(self.chunk_ids))
        (folder / "vocabulary.json").write_text(json.dumps(sorted(self.vocabulary)))
        (folder / "identifiers.json").write_text(json.dumps(sorted(self.identifiers)))
        (folder / CHECKSUMS).write_text(json.dumps(_checksums(folder)))

    @classmethod
    def load(cls, folder: Path, *, expect: Collection[str] | None = None) -> KeywordIndex:
        """Read an index written by `save` (memory-mapped), verifying it first.

        Raises ValueError when its files do not match their checksums, or when `expect` is
        given and the index does not cover exactly those chunk ids: a damaged or stale index
        would rank the wrong passages without any other error.
        """
        import bm25s

        recorded = json.loads((folder / CHECKSUMS).read_text())
        if recorded != _checksums(folder):
            raise ValueError(f"keyword index {folder} is damaged")
        chunk_ids = json.loads((folder / "chunk_ids.json").read_text())
        if expect is not None and (len(chunk_ids) != len(expect) or set(chunk_ids) != set(expect)):
            raise ValueError(f"keyword index {folder} does not match the committed chunks")
        vocabulary = set(json.loads((folder / "vocabulary.json").read_text()))
        named = set(json.loads((folder / "identifiers.json").read_text()))
        if not chunk_ids:
            return cls(chunk_ids, bm25s.BM25(), vocabulary, named)
        with NUMPY_LOADING:
            model = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        return cls(chunk_ids, model, vocabulary, named)

    def coverage(self, query: str) -> float:
        """Share of the query's terms (stemmed, stopwords dropped) that occur in the corpus."""
        tokens = _tokenize([query], ids=False, split=False)[0]
        if not tokens or not self.chunk_ids:
            return 0.0
        return sum(token in self.vocabulary for token in tokens) / len(tokens)

    def lacks(self, term: Term) -> bool:
        """Whether the corpus never uses `term` (an identifier as written; other terms as
        the stemmed words they make)."""
        if term.identifier:
            return term.text.lower() not in self.identifiers
        tokens = _tokenize([term.text], ids=False, split=False)[0]
        return bool(tokens) and any(token not in self.vocabulary for token in tokens)

    def weights(self, query: str) -> dict[str, float]:
        """Each query stem the corpus uses, weighed by its rarity (BM25's idf): a word most
        chunks use ("how", "use") weighs little."""
        import math

        vocab = getattr(self._model, "vocab_dict", None) or {}
        if not self.chunk_ids or not vocab:
            return {}
        indptr = self._model.scores["indptr"]
        total = len(self.chunk_ids)
        out = {}
        for stem in query_stems(query):
            token = vocab.get(stem)
            if token is not None:
                df = int(indptr[token + 1] - indptr[token])
                out[stem] = math.log(1 + (total - df + 0.5) / (df + 0.5))
        return out

    def search(
        self, query: str, n: int, among: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """Up to `n` (chunk id, score) pairs with a positive score, best first (of the chunks
        `among` when given)."""
        import numpy as np

        every = self._all_scores(query)
        if every is None or n < 1:
            return []
        if among is not None:
            keep = np.zeros(len(every), dtype=bool)
            keep[[self._position[cid] for cid in among if cid in self._position]] = True
            every = np.where(keep, every, 0.0)
        # get_scores and a partial sort, not bm25s' `retrieve`: that one starts a thread pool
        # and a progress bar per query, 3 ms of a 20 ms search on the workspace.
        top = np.argpartition(-every, n - 1)[:n] if n < len(every) else np.arange(len(every))
        ranked = sorted(top.tolist(), key=lambda i: (-every[i], i))
        return [(self.chunk_ids[i], float(every[i])) for i in ranked if every[i] > 0]

    def scores(self, query: str, chunk_ids: Collection[str]) -> dict[str, float]:
        """The BM25 score of each of `chunk_ids` for `query` (0.0 when no term matches)."""
        wanted = [cid for cid in chunk_ids if cid in self._position]
        every = self._all_scores(query) if wanted else None
        if every is None:
            return dict.fromkeys(wanted, 0.0)
        return {cid: float(every[self._position[cid]]) for cid in wanted}

    def _all_scores(self, query: str) -> Any:
        """Every chunk's score for `query` (an array), or None when no query term counts.

        The last query's are kept: a search asks for them twice (`search`, then `scores`
        of the dense candidates), and each costs a pass over every chunk.
        """
        if not self.chunk_ids:
            return None
        last = self._last_scores  # one read: another thread may replace it meanwhile
        if last is not None and last[0] == query:
            return last[1]
        tokens = _tokenize([query], ids=False)[0]
        every = self._model.get_scores(tokens) if tokens else None
        self._last_scores = (query, every)
        return every


def keyword_folder(index_dir: Path, key: str, generation: int) -> Path:
    """Where the keyword index of one committed generation of index `key` lives."""
    return index_dir / "bm25" / f"{key}-{generation}-v{KEYWORD_VERSION}"


def save_keyword_index(index: KeywordIndex, folder: Path) -> None:
    """Write `index` to `folder` whole or not at all (a reader never sees a part).

    Raises:
        OSError: the folder cannot be written (full disk, read-only index dir).
    """
    atomic_folder(folder, index.save)


def load_keyword_index(folder: Path, expect: Collection[str]) -> KeywordIndex | None:
    """The keyword index in `folder` if it is whole and covers exactly `expect`, else None."""
    try:
        return KeywordIndex.load(folder, expect=expect)
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file in a keyword-index folder but the checksum file itself."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.name != CHECKSUMS and path.is_file()
    }
