"""Query adapter: a linear map fitted to the corpus, applied to query vectors before search.

A small general-purpose model matches a question to passages less well than a model trained
on the domain, and there are no labelled questions at index time. The corpus labels itself:
a section's heading and a sentence taken from a chunk are questions that chunk answers (the
inverse cloze task of Lee et al., 2019). The adapter is the matrix `W` for which
`normalize(q @ W)` ranks each such pseudo-query's own chunk first among all chunks (softmax
cross-entropy, as when training a retriever), kept near the identity. Chunk vectors are not
touched, so the index stays the model's own and a rebuild is never needed to change it.

Written by hand, in NumPy: llama-index's adapter fine-tuning (`llama-index-finetuning`)
trains in torch on LLM-written questions, and the index process must not import torch (a
2-5 s import on every incremental build) nor call an LLM. The whole fit is about 40 lines.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bekb.chunking.markdown import prose_of
from bekb.domain import Chunk, IndexMeta
from bekb.files import NUMPY_LOADING
from bekb.store import ChromaStore

# Bump when pseudo-queries or the fit change: stored adapters of another version are refitted.
ADAPTER_VERSION = 1
# Fitted only to an index of at most this many chunks. Measured on the dev questions
# (docs/benchmarks.md, "Query adapter"): indexes of 830 and 3,985 chunks gained 3 first
# places of 48 each; one of 7,382 lost one, and the 13,534-chunk workspace one of 65. A single
# linear map serves a focused corpus; it cannot tell that many overlapping passages apart.
MAX_CHUNKS = 5000
# 1 to 5 sentences per chunk and 200 to 800 steps all did about as well on the cited set.
SENTENCES_PER_CHUNK = 3
SENTENCE_WORDS = (6, 40)
STEPS = 400
BATCH = 64
LEARNING_RATE = 1e-3
TEMPERATURE = 0.05
# Pull toward the identity: a pseudo-query is not a question, and the map must stay close to
# what the model already does well.
IDENTITY_PULL = 1e-3
# Each step ranks against all chunks up to this many, else against a fresh sample of them
# (and the batch's own chunks): the fit's cost stays bounded.
MAX_NEGATIVES = 4096
SEED = 0
# An incremental build keeps the previous generation's adapter until this share of the
# chunks has changed since it was fitted: a new or edited file is still found through its
# own vectors, and refitting on every save would cost a watch-mode edit 0.5 s or more.
REFIT_SHARE = 0.1
# The search vector keeps this share of the model's own query vector. Cosine similarity is
# linear in the query vector, so this scores every chunk by 0.3 of the model's similarity
# plus 0.7 of the adapter's: an ensemble of the two. On the dev set (5 fits each) it kept
# the adapter's gain in first places and gave back the passages it lost (evidence@5 0.90 →
# 0.92).
OWN_SHARE = 0.3

# Sentence ends, or line breaks (list items and table rows are lines).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def pseudo_queries(chunks: Sequence[Chunk]) -> list[tuple[str, int]]:
    """(text, index of its chunk) pairs: each chunk's own heading and a few of its sentences.

    A heading counts when it has two words or more ("Overview" says nothing of its section);
    a sentence when it has 6 to 40 words and is prose: not fenced code, a table row or a
    heading line. (Code lines as questions measured no better and cost a fifth more to embed.)
    Sentences are drawn with a fixed seed, so one corpus always gives the same pairs.
    """
    draw = random.Random(SEED)
    pairs: list[tuple[str, int]] = []
    for position, chunk in enumerate(chunks):
        heading = chunk.heading.rsplit(" > ", 1)[-1].strip()
        if len(heading.split()) >= 2:
            pairs.append((heading, position))
        sentences = [
            s.strip()
            for s in _SENTENCE_BREAK.split(prose_of(chunk.text))
            if SENTENCE_WORDS[0] <= len(s.split()) <= SENTENCE_WORDS[1]
            and not s.strip().startswith(("|", "#"))
        ]
        for sentence in draw.sample(sentences, min(len(sentences), SENTENCES_PER_CHUNK)):
            pairs.append((sentence, position))
    return pairs


def fit(queries: np.ndarray, positives: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    """The adapter matrix for pseudo-query vectors `queries`, whose chunks (rows of the
    unit-length `chunks`) are `positives`: Adam on the softmax loss, from the identity."""
    rng = np.random.default_rng(SEED)
    dimensions = queries.shape[1]
    identity = np.eye(dimensions, dtype=np.float32)
    matrix = identity.copy()
    mean = np.zeros_like(matrix)
    square = np.zeros_like(matrix)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, STEPS + 1):
        rows = rng.choice(len(positives), size=min(BATCH, len(positives)), replace=False)
        x, target = queries[rows], positives[rows]
        candidates = chunks
        if len(chunks) > MAX_NEGATIVES:
            sample = rng.choice(len(chunks), size=MAX_NEGATIVES, replace=False)
            columns = np.union1d(sample, target)
            target, candidates = np.searchsorted(columns, target), chunks[columns]
        projected = x @ matrix
        length = np.linalg.norm(projected, axis=1, keepdims=True)
        unit = projected / length
        logits = unit @ candidates.T / TEMPERATURE
        probability = np.exp(logits - logits.max(axis=1, keepdims=True))
        probability /= probability.sum(axis=1, keepdims=True)
        probability[np.arange(len(rows)), target] -= 1.0  # now d(loss)/d(logits) · batch
        grad_unit = probability @ candidates / (TEMPERATURE * len(rows))
        # Through the normalisation: only the part of the gradient across `unit` counts.
        grad_projected = (grad_unit - unit * (unit * grad_unit).sum(1, keepdims=True)) / length
        grad = x.T @ grad_projected + 2 * IDENTITY_PULL * (matrix - identity)
        mean = beta1 * mean + (1 - beta1) * grad
        square = beta2 * square + (1 - beta2) * grad * grad
        step_mean, step_square = mean / (1 - beta1**step), square / (1 - beta2**step)
        matrix -= LEARNING_RATE * step_mean / (np.sqrt(step_square) + 1e-8)
    return matrix.astype(np.float32)


@dataclass(frozen=True)
class QueryAdapter:
    """The fitted map; `apply` turns a query vector into the one to search with.

    `fitted_chunks` is how many chunks it was fitted to and `changed` how many chunks (by
    content) were added or removed since, which decides when an incremental build refits it.
    """

    matrix: np.ndarray
    fitted_chunks: int
    changed: int = 0

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """The unit search vector for each row of (unit) query `vectors`: `OWN_SHARE` of
        the query itself plus the rest of `normalize(query @ W)`."""
        own = np.asarray(vectors, dtype=np.float32)
        blend = OWN_SHARE * own + (1 - OWN_SHARE) * _unit(own @ self.matrix)
        return _unit(blend)

    def stale_after(self, changes: int, chunks: int) -> bool:
        """Whether `changes` more added or removed chunks, in a corpus of `chunks`, call for
        a refit."""
        return self.changed + changes > REFIT_SHARE * max(chunks, self.fitted_chunks)

    def to_bytes(self) -> bytes:
        """The adapter as an .npz file's bytes (what the store keeps)."""
        out = io.BytesIO()
        counts = np.array([ADAPTER_VERSION, self.fitted_chunks, self.changed])
        np.savez(out, matrix=self.matrix, counts=counts)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, dimensions: int) -> QueryAdapter:
        """Read what `to_bytes` wrote; ValueError unless it holds a finite `dimensions` x
        `dimensions` matrix (damaged, or fitted for another model)."""
        try:
            with NUMPY_LOADING, np.load(io.BytesIO(data), allow_pickle=False) as stored:
                matrix, counts = stored["matrix"], stored["counts"]
        except (zipfile.BadZipFile, KeyError, EOFError, OSError) as exc:
            raise ValueError("the stored query adapter is damaged") from exc
        if counts.shape != (3,) or counts[0] != ADAPTER_VERSION:
            raise ValueError("the stored query adapter is of another version")
        if matrix.shape != (dimensions, dimensions):
            raise ValueError("the stored query adapter is for another model")
        if not np.isfinite(matrix).all():
            raise ValueError("the stored query adapter is damaged")
        return cls(matrix.astype(np.float32, copy=False), int(counts[1]), int(counts[2]))


def stored_adapter(store: ChromaStore, meta: IndexMeta) -> QueryAdapter | None:
    """The query adapter stored for the generation `meta` describes; None when it has none
    (too large a corpus, the adapter off, or stored by another version) or it is damaged."""
    data = store.adapter(meta.collection, meta.generation)
    try:
        return None if data is None else QueryAdapter.from_bytes(data, meta.dimensions)
    except ValueError:
        return None


def _unit(rows: np.ndarray) -> np.ndarray:
    unit: np.ndarray = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return unit
