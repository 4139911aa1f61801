"""Hybrid retrieval: dense (Chroma) + BM25 candidates → fused scores → merged passages."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bekb.domain import Chunk, Copy, FileRecord, Hit, HitExplain, IndexMeta
from bekb.embedding.model import Embedder, Vectors
from bekb.errors import IndexNotBuiltError
from bekb.retrieval.adapter import QueryAdapter, stored_adapter
from bekb.retrieval.bm25 import (
    KeywordIndex,
    keyword_folder,
    load_keyword_index,
    save_keyword_index,
)
from bekb.retrieval.fusion import Fused, convex_fusion, reciprocal_rank_fusion
from bekb.retrieval.passages import assemble
from bekb.retrieval.rerank import RERANK_CANDIDATES, Reranker
from bekb.retrieval.snippets import matched_lines
from bekb.retrieval.terms import Term, decides_off_topic, specific_terms
from bekb.store import ChromaStore, cosine_similarities

# Candidates each retriever contributes before fusion. Every one is scored by both, so a
# wider pool lets a chunk that one retriever ranks far down still win on the other's score:
# 40 -> 80 gained workspace questions (13,534 chunks) and changed nothing on the cited set
# (830); about 1.5 ms per query (docs/benchmarks.md, "Retrieval quality").
CANDIDATES = 80
# Rank fusion counts both rankings the same.
RRF_WEIGHTS = {"dense": 1.0, "bm25": 1.0}
# Score fusion leans on dense similarity: calibrated on the dev questions of both scopes
# (dense 0.5 to 0.7 tried; 0.5 loses paraphrases, whose words BM25 cannot match).
CONVEX_WEIGHTS = {"dense": 0.6, "bm25": 0.4}
# Dense similarity is scaled up from cosine 0, what unrelated text scores with these models,
# not from the weakest candidate (theoretical min-max, Bruch et al. 2023): when every
# candidate is only loosely similar, min-max would stretch their small differences over the
# whole range and outvote a strong BM25 match. BM25 keeps min-max: from 0 it measured worse
# (docs/benchmarks.md, "Retrieval quality").
CONVEX_FLOORS = {"dense": 0.0}
Fusion = Literal["convex", "rrf"]
# Ranked chunks passages are assembled from (every search, whatever its k: see passages.py).
POOL = 60
# Chunks a snapshot keeps in memory at most (about 1.5 KB each; the workspace has 13,534).
CHUNK_MEMORY = 20_000
# Neighbours of each pooled chunk read with it, for completing passages (any further one a
# passage needs is read when it does).
AROUND = (-1, 1)
# Abstention reads the model's own cosine (what its threshold was calibrated on) of the
# nearest of this many adapted candidates.
NEAREST = 10


@dataclass(frozen=True)
class SearchResult:
    """Hits, best first, and the two signals abstention looks at."""

    hits: tuple[Hit, ...]
    # The model's own cosine of the nearest chunk (with a query adapter: of the best of the
    # 10 nearest to the adapted query), what the abstention threshold was calibrated on.
    best_similarity: float
    coverage: float  # share of the query's terms the corpus contains at all
    # The query's name-shaped terms the corpus never uses (products, APIs, identifiers).
    missing: tuple[Term, ...] = ()

    def off_topic(self, *, min_similarity: float, min_coverage: float) -> bool:
        """Whether the corpus does not cover the query.

        Either the query names what the corpus never mentions (a product, an API, an
        identifier: `terms.decides_off_topic`), or two weaker signals agree: the nearest
        passage is only loosely similar, and a good part of the query's vocabulary never
        occurs in the corpus. Either of those two alone misfires: terse questions have low
        similarity, paraphrases use words the documents do not.
        """
        if not self.hits or decides_off_topic(list(self.missing)):
            return True
        return self.best_similarity < min_similarity and self.coverage < min_coverage


@dataclass
class Snapshot:
    """One committed generation of the index, as searches read it."""

    meta: IndexMeta
    records: dict[str, FileRecord]
    live: set[str]
    owner: dict[str, str]  # chunk id → path of its file
    position: dict[str, int]  # chunk id → its place among its file's chunks
    keywords: KeywordIndex
    adapter: QueryAdapter | None  # None: the model's own query vectors
    # Chunks read so far, by id: a generation's chunks never change, and a long-lived
    # process (an MCP server, watch mode) reads the same ones again and again.
    chunks: dict[str, Chunk] = field(default_factory=dict)
    vectors: dict[str, Any] = field(default_factory=dict)  # the same, for stored vectors

    def read(self, store: ChromaStore, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks of `chunk_ids` this generation has, from memory where it can."""
        found = {cid: c for cid in chunk_ids if (c := self.chunks.get(cid)) is not None}
        missing = [cid for cid in chunk_ids if cid not in found]
        if missing:
            read = {c.id: c for c in store.get_chunks(self.meta.collection, missing)}
            if len(self.chunks) + len(read) > CHUNK_MEMORY:
                self.chunks.clear()
            self.chunks.update(read)  # one dict update: safe beside readers in other threads
            found.update(read)
        return found

    def similarities(
        self, store: ChromaStore, vector: Vectors, chunk_ids: Sequence[str]
    ) -> dict[str, float]:
        """Cosine similarity of `vector` to the stored vector of each chunk in `chunk_ids`
        that has one, the vectors read from memory where they can be."""
        missing = [cid for cid in chunk_ids if cid not in self.vectors]
        if missing:
            read = store.readable_vectors(self.meta.collection, missing)
            if len(self.vectors) + len(read) > CHUNK_MEMORY:
                self.vectors.clear()
            self.vectors.update(read)
        known = {cid: v for cid in chunk_ids if (v := self.vectors.get(cid)) is not None}
        return cosine_similarities(vector, known)


class Retriever:
    """Searches the active index; reloads its view when a new generation is committed."""

    def __init__(
        self,
        store: ChromaStore,
        index_dir: Path,
        embedder: Callable[[IndexMeta], Embedder],
        reranker: Callable[[], Reranker] | None = None,
        fusion: Fusion = "convex",
        *,
        adapt: bool = True,
    ) -> None:
        self.store = store
        self.index_dir = index_dir
        self.fusion = fusion
        self.adapt = adapt
        self._embedder_factory = embedder
        self._reranker_factory = reranker
        self._reranker: Reranker | None = None
        self._embedder: Embedder | None = None
        self._embedder_for = ""  # the model fingerprint the embedder was made for
        self._snapshot: Snapshot | None = None
        # Searches in several threads share one retriever: a new generation is loaded, and
        # the query model made, once.
        self._loading = threading.Lock()

    def snapshot(self) -> Snapshot:
        """The committed index as of now (cached until its generation changes)."""
        meta = self.store.active()
        if meta is None:
            raise IndexNotBuiltError("no index yet: run `bekb index` first")
        current = self._snapshot
        if current is not None and current.meta == meta:
            return current
        with self._loading:
            if self._snapshot is not None and self._snapshot.meta == meta:
                return self._snapshot
            return self._load(meta)

    def _load(self, meta: IndexMeta) -> Snapshot:
        records = self.store.files(meta.collection)
        owner = {cid: path for path, record in records.items() for cid in record.chunk_ids}
        position = {
            cid: at for record in records.values() for at, cid in enumerate(record.chunk_ids)
        }
        live = set(owner)
        adapter = stored_adapter(self.store, meta) if self.adapt else None
        keywords = self._keywords(meta, records)
        self._snapshot = Snapshot(meta, records, live, owner, position, keywords, adapter)
        # A rebuild under another model or backend (int8 has its own fingerprint, not its
        # own model name) needs the query embedder of that model.
        if self._embedder is not None and self._embedder_for != meta.model_fingerprint:
            self._embedder = None
        return self._snapshot

    def embed_query(self, query: str, meta: IndexMeta) -> Vectors:
        """The query's vector (a 1-row matrix) under the model that built the index."""
        embedder = self._embedder
        if embedder is None:
            with self._loading:
                if self._embedder is None:
                    self._embedder = self._embedder_factory(meta)
                    self._embedder_for = meta.model_fingerprint
                embedder = self._embedder
        vectors: Vectors = embedder.embed([query])
        return vectors[:1]

    def search(
        self,
        query: str,
        k: int,
        *,
        snapshot: Snapshot | None = None,
        retry: bool = True,
        preferred: Collection[str] = (),
        allowed: Collection[str] | None = None,
        left_out: Collection[str] = (),
    ) -> SearchResult:
        """The `k` best passages for `query`, from `snapshot` (by default the current one).

        A passage found word for word in several files is one hit, cited from a file in
        `preferred` when one of them is (see `fold_copies`). With `allowed`, only those
        files are searched (the candidates themselves, so k hits come back when they exist);
        the abstention signals of vocabulary still read the whole index. The files
        `left_out` (deleted since indexing) are dropped from the candidates.
        """
        snap = snapshot or self.snapshot()
        key = snap.meta.collection
        own = self.embed_query(query, snap.meta)
        vector = snap.adapter.apply(own) if snap.adapter else own
        live, paths, outside = _restrict(snap, allowed)
        if left_out:
            # Dropped here, not by a Chroma filter: after a killed build a filtered Chroma
            # search can fail on an id the build left half-written, where a plain one does not.
            records = snap.records
            live = live - {c for p in left_out if p in records for c in records[p].chunk_ids}
        found = (
            self.store.query(key, vector, CANDIDATES, paths=paths, outside=outside) if live else []
        )
        dense = [(cid, sim) for cid, sim in found if cid in live]
        if not dense and live and retry and self.store.active() != snap.meta:
            # A rebuild switched the index between reading the pointer and querying it.
            return self.search(
                query, k, retry=False, preferred=preferred, allowed=allowed, left_out=left_out
            )
        among = live if paths is not None else None
        lexical = [
            (cid, s) for cid, s in snap.keywords.search(query, CANDIDATES, among) if cid in live
        ]
        similarity = dict(dense)
        fused = None
        if self.fusion == "convex":
            fused = self._convex(query, vector, snap, similarity, dict(lexical))
        if fused is None:
            fused = reciprocal_rank_fusion(
                {"dense": [c for c, _ in dense], "bm25": [c for c, _ in lexical]},
                weights=RRF_WEIGHTS,
            )
        # Passages are assembled from a pool of fixed size, never from what `k` leaves: the
        # first n hits are the same whatever k is.
        pool = fused[:POOL]
        chunks, neighbour = self._chunks_around(snap, [f.id for f in pool])
        ranked = []
        for entry in pool:
            chunk = chunks.get(entry.id)
            if chunk is None:
                continue
            explain = HitExplain(
                dense_rank=entry.ranks.get("dense"),
                bm25_rank=entry.ranks.get("bm25"),
                dense_similarity=similarity.get(entry.id),
                fused=entry.score,
            )
            ranked.append((chunk, explain))
        merged = fold_copies(assemble(ranked, neighbour), preferred)
        if self._reranker_factory is not None:
            with self._loading:
                self._reranker = self._reranker or self._reranker_factory()
            head = self._reranker.rerank(query, merged[:RERANK_CANDIDATES])
            merged = [*head, *merged[RERANK_CANDIDATES:]]
        if snap.adapter is None:
            best = max((sim for _, sim in dense), default=0.0)
        else:
            nearest = [cid for cid, _ in dense[:NEAREST]]
            best = max(snap.similarities(self.store, own, nearest).values(), default=0.0)
        missing = tuple(t for t in specific_terms(query) if snap.keywords.lacks(t))
        weights = snap.keywords.weights(query)
        shown = tuple(_with_snippet(hit, weights) for hit in merged[:k])
        return SearchResult(shown, best, snap.keywords.coverage(query), missing)

    def _chunks_around(
        self, snap: Snapshot, chunk_ids: Sequence[str]
    ) -> tuple[dict[str, Chunk], Callable[[Chunk, int], Chunk | None]]:
        """The chunks `chunk_ids` name, and a neighbour lookup for assembling passages; the
        chunks just around them are read in the same request (passages rarely need more)."""
        wanted = dict.fromkeys(chunk_ids)
        for cid in chunk_ids:
            for step in AROUND:
                near = _beside(snap, cid, step)
                if near is not None:
                    wanted.setdefault(near, None)
        known = snap.read(self.store, list(wanted))

        def neighbour(chunk: Chunk, step: int) -> Chunk | None:
            near = _beside(snap, chunk.id, step)
            if near is None:
                return None
            return snap.read(self.store, [near]).get(near)

        return known, neighbour

    def _convex(
        self,
        query: str,
        vector: Vectors,
        snap: Snapshot,
        similarity: dict[str, float],
        lexical: dict[str, float],
    ) -> list[Fused] | None:
        """Score every candidate by both retrievers, then fuse the scores.

        A chunk only one retriever found still has a real score from the other: its stored
        vector's similarity (one read of at most CANDIDATES vectors) or its BM25 score. None
        when a candidate's vector cannot be read (written by another process after this one
        loaded Chroma's vector index, or a killed build's): its similarity is unknown, and
        rank fusion, which needs no scores, ranks this query instead.
        """
        wanted = [c for c in lexical if c not in similarity]
        similarity.update(snap.similarities(self.store, vector, wanted))
        if any(c not in similarity for c in wanted):
            return None
        lexical.update(snap.keywords.scores(query, [c for c in similarity if c not in lexical]))
        return convex_fusion(
            {
                "dense": dict(similarity),
                "bm25": {c: lexical.get(c, 0.0) for c in similarity},
            },
            weights=CONVEX_WEIGHTS,
            floors=CONVEX_FLOORS,
        )

    def _keywords(self, meta: IndexMeta, records: dict[str, FileRecord]) -> KeywordIndex:
        folder = keyword_folder(self.index_dir, meta.collection, meta.generation)
        live = [cid for record in records.values() for cid in record.chunk_ids]
        loaded = load_keyword_index(folder, live)
        if loaded is not None:
            return loaded
        # Not built here yet (server mode, another machine indexed) or damaged: rebuild from
        # the store and keep it as this machine's cache.
        chunks = {c.id: c for c in self.store.get_chunks(meta.collection, live)}
        ids = [cid for cid in live if cid in chunks]
        index = KeywordIndex.build(ids, [chunks[cid].embed_text for cid in ids])
        # A read-only or racing index dir: the in-memory index still serves.
        with contextlib.suppress(OSError):
            save_keyword_index(index, folder)
        return index


def _restrict(
    snap: Snapshot, allowed: Collection[str] | None
) -> tuple[set[str], list[str] | None, bool]:
    """For a search of the files `allowed` (None: all): the chunk ids it may return, and
    the files Chroma filters its candidates by (None: no filter; True: the files left out)."""
    if allowed is None:
        return snap.live, None, False
    inside = [p for p in snap.records if p in allowed]
    outside = [p for p in snap.records if p not in allowed]
    if not outside:
        return snap.live, None, False
    live = {cid for path in inside for cid in snap.records[path].chunk_ids}
    # The shorter list makes the cheaper filter.
    return (live, outside, True) if len(outside) < len(inside) else (live, inside, False)


def _beside(snap: Snapshot, chunk_id: str, step: int) -> str | None:
    """The id of the chunk `step` places from `chunk_id` in its file, if there is one."""
    path = snap.owner.get(chunk_id)
    if path is None:
        return None
    ids = snap.records[path].chunk_ids
    at = snap.position[chunk_id] + step
    return ids[at] if 0 <= at < len(ids) else None


def _with_snippet(hit: Hit, weights: dict[str, float]) -> Hit:
    lines, stems = matched_lines(hit.text, hit.start_line, weights)
    return replace(hit, matched_lines=lines, matched_stems=stems)


def fold_copies(hits: Sequence[Hit], preferred: Collection[str] = ()) -> list[Hit]:
    """Hits best first, each text once (whitespace aside): a file copied between plugins
    takes one place in the ranking, not two.

    A later hit with the same text becomes a copy of the first. The hit keeps the better
    rank and score, and is cited from a copy in `preferred` when the first is not.
    """
    out: list[Hit] = []
    first: dict[str, int] = {}  # collapsed text → index in `out`
    for hit in hits:
        key = " ".join(hit.text.split())
        index = first.get(key)
        if index is None:
            first[key] = len(out)
            out.append(hit)
            continue
        kept = out[index]
        if hit.path in preferred and kept.path not in preferred:
            kept, hit = replace(hit, score=kept.score, explain=kept.explain), kept
        copy = Copy(hit.path, hit.heading, hit.start_line, hit.end_line)
        out[index] = replace(kept, copies=(*kept.copies, copy, *hit.copies))
    return out
