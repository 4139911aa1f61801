"""Run an index build: plan → chunk → embed (cached) → write → commit, crash-safe at each step.

Commit protocol (why a kill at any point leaves a usable index): chunks are written first and
are invisible to readers until their file's registry record lists them; the registry record
is the commit. Chunks a killed run left behind are not live and are deleted by the next run.
A build under new model or chunker settings fills fresh collections and switches the active
pointer only when complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from bekb.chunking import CHUNKER_VERSION, TokenCounter, chunk_file
from bekb.corpus.selection import Selection
from bekb.domain import Chunk, FileRecord, IndexMeta, IndexReport, Progress
from bekb.embedding.backends import BackendModelSpec
from bekb.embedding.cache import EmbeddingCache, text_key
from bekb.embedding.model import Embedder, ModelSpec
from bekb.errors import IndexStateError, StoreError
from bekb.indexing.state import LoadedFile, Plan, plan
from bekb.indexing.timing import Stopwatch
from bekb.retrieval import adapter as query_adapter
from bekb.retrieval.adapter import QueryAdapter, fit, pseudo_queries, stored_adapter
from bekb.retrieval.bm25 import (
    KEYWORD_VERSION,
    ChunkTerms,
    KeywordIndex,
    chunk_terms,
    keyword_folder,
    load_keyword_index,
    save_keyword_index,
)
from bekb.store import ChromaStore

ProgressCallback = Callable[[Progress], None]
# Files committed per registry write: a kill loses at most this much finished work.
COMMIT_EVERY = 64
# Where a chunk's keyword terms are cached (by chunk id); a new tokenisation, a new kind.
TERMS_KIND = f"keyword-terms-v{KEYWORD_VERSION}"
# Chunks whose keyword terms are made, or read back, at once: bounds the memory they take.
TERMS_BATCH = 2000
EMBED_BATCH = 256


@dataclass(frozen=True)
class BuildSettings:
    """What determines an index's contents besides the files: model and chunking."""

    model: ModelSpec
    chunk_tokens: int

    @property
    def fingerprint(self) -> str:
        """Changes whenever vectors or chunk boundaries would: a different index."""
        text = f"{self.model.fingerprint}|{CHUNKER_VERSION}|{self.chunk_tokens}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def rebuild_reason(self, meta: IndexMeta) -> str | None:
        """Why a build with these settings re-embeds the index `meta` describes, or None."""
        if meta.fingerprint == self.fingerprint:
            return None
        if meta.embed_model != self.model.name:
            return f"embed_model is {self.model.name} (the index has {meta.embed_model})"
        if meta.model_fingerprint != self.model.fingerprint:
            runs = self.model.backend if isinstance(self.model, BackendModelSpec) else "fp32"
            return f"index_backend gives {runs} vectors (the index has others)"
        return "the chunking changed (chunk_tokens or the chunker version)"


class Indexer:
    """Builds and updates the index in `store` from the files of a selection."""

    def __init__(
        self,
        *,
        store: ChromaStore,
        index_dir: Path,
        build: BuildSettings,
        counter: TokenCounter,
        embedder: Callable[[Sequence[str]], Embedder],
        cache: EmbeddingCache,
        on_progress: ProgressCallback | None = None,
        adapt: bool = True,
        clock: Stopwatch | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or Stopwatch()
        self.index_dir = index_dir
        self.build = build
        self.adapt = adapt
        self.counter = counter
        self._embedder_factory = embedder
        self._embedder: Embedder | None = None
        self.cache = cache
        self.on_progress = on_progress or (lambda _: None)

    def _model(self, texts: Sequence[str]) -> Embedder:
        """The model, loaded on first use (a no-op run never loads it); `texts` are what
        this run embeds, for the factory to check a new export on."""
        if self._embedder is None:
            with self.clock.stage("model load"):
                self._embedder = self._embedder_factory(texts)
        return self._embedder

    def run(self, selection: Selection, *, full: bool = False) -> IndexReport:
        """Bring the index in line with the selection's files."""
        started = time.perf_counter()
        stage = self.clock.stage
        with stage("read index state"):
            active = self.store.active()
            rebuild = full or active is None or active.fingerprint != self.build.fingerprint
            # A rebuild fills fresh collections, so readers keep the active index meanwhile.
            key = active.collection if active and not rebuild else self._fresh_key(active)
            records = {} if rebuild else self.store.files(key)
            if not rebuild:
                self._remove_orphans(key, records)
                self._drop_abandoned(key)
                self.store.widen_search(key)
        with stage("scan"):
            self.on_progress(Progress("scan", 0, len(selection.files)))
            todo = plan(selection.root, selection.files, records)
            self.on_progress(Progress("scan", len(selection.files), len(selection.files)))

        with stage("chunk"):
            chunks_by_file = self._chunk(todo.work)
        # Chunked: only the files' sources are needed now (10x the workspace is ~110 MB).
        todo.new = [replace(f, text="") for f in todo.new]
        todo.changed = [replace(f, text="") for f in todo.changed]
        all_chunks = [c for chunks in chunks_by_file.values() for c in chunks]
        vectors, embedded, cached = self._embed(all_chunks)
        with stage("write"):
            superseded = self._write(key, todo, chunks_by_file, vectors, records)
            superseded |= self._forget(key, todo.deleted, records)
            live = self.store.files(key)
        # Read off a vector before they are dropped; with nothing embedded, from the model.
        dimensions = len(vectors[text_key(all_chunks[0].embed_text)]) if all_chunks else 0
        del vectors  # written: what follows needs the memory more
        adapt = self._wants_adapter(live)
        with stage("check"):
            unchanged = (
                active is not None
                and not rebuild
                and not (todo.work or todo.deleted or todo.restat)
                and json.loads(active.unresolved) == list(selection.unresolved)
                and json.loads(active.agent_files) == list(selection.agent_files)
                and self._keywords_intact(key, active.generation, live)
                and (not adapt or stored_adapter(self.store, active) is not None)
            )
        if not unchanged:  # a no-op run leaves the committed index exactly as it was
            generation = (active.generation if active else 0) + 1
            dimensions = dimensions or self._known_dimensions([])
            with stage("keyword index"):
                self._save_keyword_index(key, generation, live, all_chunks)
            with stage("query adapter"):
                if adapt:
                    chunks = self._live_chunks(key, live)
                    previous = (
                        None if rebuild or active is None else stored_adapter(self.store, active)
                    )
                    before = {cid for record in records.values() for cid in record.chunk_ids}
                    added = {c.id for c in all_chunks} - before  # ids are content digests
                    changes = len(added) + len(superseded)
                    self._save_adapter(key, generation, chunks, dimensions, previous, changes)
                else:  # a killed build may have left one for this generation: it must not serve
                    serving = [(active.collection, active.generation)] if active else []
                    self.store.keep_adapters([*serving, (key, generation - 1)])
            with stage("commit"):
                meta = IndexMeta(
                    fingerprint=self.build.fingerprint,
                    collection=key,
                    embed_model=self.build.model.name,
                    model_fingerprint=self.build.model.fingerprint,
                    dimensions=dimensions,
                    chunker_version=CHUNKER_VERSION,
                    chunk_tokens=self.build.chunk_tokens,
                    generation=generation,
                    built_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    build_seconds=round(time.perf_counter() - started, 3),
                    agent_files=json.dumps(list(selection.agent_files)),
                    unresolved=json.dumps(list(selection.unresolved)),
                )
                self.store.set_active(meta)
                self._tidy(meta)
        with stage("commit"):
            # Only now: searches still on the previous generation read these chunks until the
            # switch. A kill before this line leaves them as orphans, removed by the next run.
            still_live = {cid for record in live.values() for cid in record.chunk_ids}
            self.store.delete_chunks(key, sorted(superseded - still_live))
        self.on_progress(Progress("finish", 1, 1))
        return IndexReport(
            added=len(todo.new),
            changed=len(todo.changed),
            removed=len(todo.deleted),
            unchanged=len(todo.unchanged),
            chunks=sum(len(r.chunk_ids) for r in live.values()),
            embedded=embedded,
            cached=cached,
            seconds=round(time.perf_counter() - started, 3),
            full_rebuild=rebuild,
            rebuild_reason=self._why_rebuilt(full, active) if rebuild else None,
            skipped=tuple(todo.skipped),
            unresolved=selection.unresolved,
            refused=selection.refused,
            timings=self.clock.totals(),
        )

    # -- steps -------------------------------------------------------------------------------

    def _why_rebuilt(self, full: bool, active: IndexMeta | None) -> str | None:
        if full:
            return "asked for"
        return "no index yet" if active is None else self.build.rebuild_reason(active)

    def _fresh_key(self, active: IndexMeta | None) -> str:
        for stale in self.store.collection_keys():  # what an abandoned build left behind
            if active is None or stale != active.collection:
                self.store.drop(stale)
        base = self.build.fingerprint
        if active is None or active.collection != base:
            return base
        return f"{base}-{int(time.time() * 1000)}"

    def _drop_abandoned(self, active_key: str) -> None:
        """Drop what a killed `--full` or model switch left half built beside the index."""
        for stale in self.store.collection_keys():
            if stale != active_key:
                self.store.drop(stale)

    def _remove_orphans(self, key: str, records: dict[str, FileRecord]) -> None:
        """Delete chunks no committed file lists (a run killed before deleting what it
        superseded leaves them)."""
        live = {cid for record in records.values() for cid in record.chunk_ids}
        if self.store.count(key) <= len(live):  # none: skip reading every chunk's record
            return
        orphans = [cid for cid in self.store.chunk_ages(key) if cid not in live]
        self.store.delete_chunks(key, orphans)

    def _chunk(self, files: Sequence[LoadedFile]) -> dict[str, list[Chunk]]:
        out: dict[str, list[Chunk]] = {}
        for done, loaded in enumerate(files, start=1):
            source = loaded.source
            out[source.path] = chunk_file(
                source.path,
                loaded.text,
                source.sha256,
                self.counter,
                max_tokens=self.build.chunk_tokens,
            )
            self.on_progress(Progress("chunk", done, len(files), source.path))
        return out

    def _embed(self, chunks: Sequence[Chunk]) -> tuple[dict[str, np.ndarray], int, int]:
        """Vectors by cache key for every chunk; returns (vectors, computed, from cache)."""
        return self._embed_texts([c.embed_text for c in chunks], "embed")

    def _embed_texts(
        self, texts: Sequence[str], stage: Literal["embed", "adapt"]
    ) -> tuple[dict[str, np.ndarray], int, int]:
        """Vectors by cache key for every text; returns (vectors, computed, from cache)."""
        model_key = self.build.model.fingerprint
        keys = {text_key(text): text for text in texts}
        dims = self._known_dimensions(list(keys.values()))
        with self.clock.stage("embedding cache"):
            found = self.cache.get_many(model_key, list(keys), dims) if dims else {}
        # Longest first, so each call's texts are of one length (little padding) and the
        # progress bar's ETA errs long rather than short.
        missing = sorted((k for k in keys if k not in found), key=lambda k: -len(keys[k]))
        total = len(missing)
        self.on_progress(Progress(stage, 0, total))
        if total:
            model = self._model([keys[k] for k in missing])
        for start in range(0, total, EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            with self.clock.stage("embed"):
                vectors = model.embed([keys[k] for k in batch])
            computed = dict(zip(batch, vectors, strict=True))
            with self.clock.stage("embedding cache"):  # durable at once: a killed run resumes
                self.cache.put_many(model_key, computed)
            found.update(computed)
            self.on_progress(Progress(stage, min(start + EMBED_BATCH, total), total))
        return found, total, len(keys) - total

    def _write(
        self,
        key: str,
        todo: Plan,
        chunks_by_file: dict[str, list[Chunk]],
        vectors: dict[str, np.ndarray],
        records: dict[str, FileRecord],
    ) -> set[str]:
        """Write and commit the files' chunks; returns the ids their commits superseded."""
        files = todo.work
        now = time.time()
        superseded: set[str] = set()
        for start in range(0, len(files), COMMIT_EVERY):
            batch = files[start : start + COMMIT_EVERY]
            chunks = [c for f in batch for c in chunks_by_file[f.source.path]]
            matrix = (
                np.vstack([vectors[text_key(c.embed_text)] for c in chunks])
                if chunks
                else np.zeros((0, 1), dtype=np.float32)
            )
            self.store.put_chunks(key, chunks, matrix, now)
            committed = [
                FileRecord(
                    path=f.source.path,
                    sha256=f.source.sha256,
                    size=f.source.size,
                    mtime_ns=f.source.mtime_ns,
                    chunk_ids=tuple(c.id for c in chunks_by_file[f.source.path]),
                )
                for f in batch
            ]
            self.store.put_files(key, committed)
            superseded |= {
                cid
                for f in batch
                if f.source.path in records
                for cid in records[f.source.path].chunk_ids
            } - {c.id for c in chunks}
            self.on_progress(Progress("write", min(start + COMMIT_EVERY, len(files)), len(files)))
        if todo.restat:
            self.store.put_files(
                key,
                [
                    FileRecord(s.path, s.sha256, s.size, s.mtime_ns, records[s.path].chunk_ids)
                    for s in todo.restat
                ],
            )
        return superseded

    def _forget(self, key: str, paths: Sequence[str], records: dict[str, FileRecord]) -> set[str]:
        """Uncommit deleted files; returns their chunk ids (deleted after the switch)."""
        self.store.delete_files(key, paths)
        return {cid for p in paths for cid in records[p].chunk_ids}

    def _live_chunks(self, key: str, live: dict[str, FileRecord]) -> list[Chunk]:
        """The committed chunks, in registry order."""
        wanted = [cid for record in live.values() for cid in record.chunk_ids]
        chunks = {c.id: c for c in self.store.get_chunks(key, wanted)}
        return [chunks[cid] for cid in wanted if cid in chunks]

    def _save_keyword_index(
        self, key: str, generation: int, live: dict[str, FileRecord], fresh: Sequence[Chunk]
    ) -> None:
        """Index the live chunks' keyword terms: those of chunks seen before from the cache
        (ids are content digests), the others made from `fresh` (this run's chunks) or the
        store's text and cached; TERMS_BATCH at a time either way."""
        ids = [cid for record in live.values() for cid in record.chunk_ids]
        known = set(self.cache.get_derived_keys(TERMS_KIND, ids))
        missing = [cid for cid in ids if cid not in known]
        for start in range(0, len(missing), TERMS_BATCH):
            self._make_terms(key, missing[start : start + TERMS_BATCH], fresh)

        def stored() -> Iterator[tuple[str, ChunkTerms]]:
            for start in range(0, len(ids), TERMS_BATCH):
                batch = ids[start : start + TERMS_BATCH]
                found = self.cache.get_derived(TERMS_KIND, batch)
                damaged: list[str] = []
                for cid in batch:
                    try:
                        yield cid, ChunkTerms.from_bytes(found[cid])
                    except (KeyError, ValueError):
                        damaged.append(cid)
                yield from self._make_terms(key, damaged, fresh).items()

        index = KeywordIndex.from_terms(stored())
        folder = keyword_folder(self.index_dir, key, generation)
        if folder.parent.exists() and not folder.parent.is_dir():  # our cache's place: ours
            folder.parent.unlink()
        try:
            save_keyword_index(index, folder)
        except OSError as exc:
            advice = (
                "free some space"
                if exc.errno == errno.ENOSPC
                else "check the index dir's permissions"
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
                else "fix the index dir"
            )
            raise IndexStateError(
                f"cannot write the keyword index in {folder.parent}: {exc.strerror or exc} "
                f"({advice}, then run `bekb index` again; the previous index still serves)"
            ) from exc

    def _make_terms(
        self, key: str, ids: Sequence[str], fresh: Sequence[Chunk]
    ) -> dict[str, ChunkTerms]:
        """The keyword terms of chunks `ids` (found in `fresh` or read from the store),
        cached; a chunk the store no longer has is left out."""
        if not ids:
            return {}
        wanted = set(ids)
        chunks = {c.id: c for c in fresh if c.id in wanted}
        chunks.update((c.id, c) for c in self.store.get_chunks(key, sorted(wanted - set(chunks))))
        todo = [cid for cid in ids if cid in chunks]
        made = dict(zip(todo, chunk_terms([chunks[cid].embed_text for cid in todo]), strict=True))
        self.cache.put_derived(TERMS_KIND, {cid: terms.to_bytes() for cid, terms in made.items()})
        return made

    def _save_adapter(
        self,
        key: str,
        generation: int,
        chunks: Sequence[Chunk],
        dimensions: int,
        previous: QueryAdapter | None,
        changes: int,
    ) -> None:
        """Fit the query adapter to the committed chunks (see `bekb.retrieval.adapter`), or
        carry the previous generation's forward when only a few chunks changed since it was
        fitted."""
        if previous is not None and not previous.stale_after(changes, len(chunks)):
            adapter = replace(previous, changed=previous.changed + changes)
        else:
            adapter = QueryAdapter(self._fit_adapter(key, chunks, dimensions), len(chunks))
        self.store.put_adapter(key, generation, adapter.to_bytes())

    def _fit_adapter(self, key: str, chunks: Sequence[Chunk], dimensions: int) -> np.ndarray:
        stored = self.store.vectors(key, [c.id for c in chunks])
        # In file order: the same corpus gives the same pairs and the same fit.
        kept = sorted((c for c in chunks if c.id in stored), key=lambda c: (c.path, c.ordinal))
        pairs = pseudo_queries(kept)
        if not pairs:
            return np.eye(dimensions, dtype=np.float32)
        found, _, _ = self._embed_texts([text for text, _ in pairs], "adapt")
        return fit(
            np.asarray([found[text_key(text)] for text, _ in pairs], dtype=np.float32),
            np.asarray([position for _, position in pairs]),
            np.asarray([stored[c.id] for c in kept], dtype=np.float32),
        )

    def _wants_adapter(self, live: dict[str, FileRecord]) -> bool:
        """Whether this index gets a query adapter: on, and a corpus it helps (small enough)."""
        chunks = sum(len(r.chunk_ids) for r in live.values())
        return self.adapt and chunks <= query_adapter.MAX_CHUNKS

    def _keywords_intact(self, key: str, generation: int, live: dict[str, FileRecord]) -> bool:
        """Whether the committed keyword index is whole and covers exactly the live chunks.

        A run killed between committing files and saving their keyword index, or a damaged
        folder, would otherwise leave lexical search blind to some chunks for good.
        """
        folder = keyword_folder(self.index_dir, key, generation)
        wanted = [cid for record in live.values() for cid in record.chunk_ids]
        return load_keyword_index(folder, wanted) is not None

    def _tidy(self, meta: IndexMeta) -> None:
        """Drop what the new active index replaced: old collections, old keyword indexes."""
        for stale in self.store.collection_keys():
            if stale != meta.collection:
                self.store.drop(stale)
        keep = {
            keyword_folder(self.index_dir, meta.collection, meta.generation).name,
            keyword_folder(self.index_dir, meta.collection, meta.generation - 1).name,
        }
        for folder in (self.index_dir / "bm25").glob("*"):
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(StoreError):  # tidying, not work: the next commit retries
            self.store.keep_adapters(
                [(meta.collection, meta.generation - 1), (meta.collection, meta.generation)]
            )

    def _known_dimensions(self, texts: Sequence[str]) -> int:
        if self._embedder is not None:
            return self._embedder.dimensions
        active = self.store.active()
        if active is not None and active.model_fingerprint == self.build.model.fingerprint:
            return active.dimensions
        return self._model(texts).dimensions
