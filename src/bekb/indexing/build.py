"""One index run with all it needs: the write lock and lease, the embedding cache, the model's
tokenizer and export, and where its time went."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace

from bekb.corpus.selection import Selection, require_files
from bekb.domain import IndexReport, Progress
from bekb.embedding.backends import EmbeddingModels
from bekb.embedding.cache import EmbeddingCache
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.errors import StoreError
from bekb.indexing.indexer import BuildSettings, Indexer
from bekb.indexing.lock import index_write_lock
from bekb.indexing.timing import Stopwatch
from bekb.settings import Settings
from bekb.store import ChromaStore


def build_index(
    settings: Settings,
    selection: Callable[[], Selection],
    open_store: Callable[[bool], ChromaStore],
    models: EmbeddingModels,
    *,
    full: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> IndexReport:
    """Bring the index in line with `selection()` (only what changed, unless `full`).

    `open_store(replace)` gives the store for writing, under the write lock; with `replace`
    the damaged store is set aside first. An embedded store found damaged during the run
    (its SQLite file checked when a Chroma call fails) is replaced and rebuilt from scratch:
    the embedding cache makes that cheap.

    Raises:
        ConfigError: the settings select no file (nothing would be indexed).
    """
    clock = Stopwatch()
    started = time.perf_counter()
    with clock.stage("select"):
        chosen = require_files(selection())  # an index of nothing is a setting to fix
        counter = ModelTokenizer.for_model(models.tokenizer_model())  # an unknown model: now
    spec = models.index_identity()
    timeout = settings.lock_timeout

    def waiting(message: str) -> None:
        if on_progress is not None:
            on_progress(Progress("wait", 0, 0, message))

    with contextlib.ExitStack() as held:
        with clock.stage("lock and open"):
            held.enter_context(index_write_lock(settings.index_dir, timeout, waiting))
            store = open_store(False)
            held.enter_context(store.writer_lease(timeout, waiting))
            cache = EmbeddingCache(settings.index_dir / "embeddings.sqlite")
            held.enter_context(contextlib.closing(cache))

        def run(store: ChromaStore, full: bool) -> IndexReport:
            indexer = Indexer(
                store=store,
                index_dir=settings.index_dir,
                build=BuildSettings(spec, settings.chunk_tokens),
                counter=counter,
                embedder=lambda texts: models.for_chunks(spec, texts),
                cache=cache,
                on_progress=on_progress,
                adapt=settings.query_adapter,
                clock=clock,
            )
            return indexer.run(chosen, full=full)

        try:
            report = run(store, full)
        except StoreError as exc:
            if not exc.damaged:
                raise
            store = open_store(True)
            report = run(store, True)
        with clock.stage("query model"):
            models.ensure_query_export(spec, lambda: _chunk_texts(store))
    seconds = round(time.perf_counter() - started, 3)
    return replace(report, seconds=seconds, timings=clock.totals())


def _chunk_texts(store: ChromaStore) -> list[str]:
    """What the committed chunks embed (a new query export is checked on these)."""
    meta = store.active()
    return [c.embed_text for c in store.get_chunks(meta.collection)] if meta else []
