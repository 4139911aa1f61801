"""KnowledgeBase: index, search, ask and status over one workspace; the product's public face."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bekb.corpus.selection import Selection, check_root, select_files
from bekb.domain import (
    Answer,
    CorpusStatus,
    FileStatus,
    Hit,
    IndexReport,
    IndexStatus,
    Progress,
    Source,
    SourceFile,
)
from bekb.errors import EmbeddingError, IndexNotBuiltError, UsageError
from bekb.indexing.state import Plan, plan
from bekb.settings import Settings

if TYPE_CHECKING:
    from threading import Event

    from bekb.corpus.sync import SyncReport
    from bekb.embedding import Embedder, ModelSpec
    from bekb.evaluation import Report as EvalReport
    from bekb.indexing.watch import ErrorCallback, RebuildCallback
    from bekb.retrieval.retriever import Retriever, SearchResult, Snapshot
    from bekb.store import ChromaStore, FileRecord, IndexMeta

MAX_QUESTION_CHARS = 4000
MAX_K = 100


class KnowledgeBase:
    """One knowledge base: a workspace root, its index, and the questions asked of it.

    Example:
        kb = KnowledgeBase.open(root="../shared/corpus")
        kb.index()
        for hit in kb.search("how do I do sagas", k=3):
            print(hit.label)
    """

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._store: ChromaStore | None = None
        self._retriever: Retriever | None = None
        self._index_models: dict[str, Embedder] = {}
        self._selection: Selection | None = None
        # Files a staleness check hashed because their stat no longer matched the index, and
        # found unchanged (a checkout or copy that touched them): trusted by stat from then
        # on, so a search does not hash the whole corpus again until the next `index()`.
        self._restat: dict[str, SourceFile] = {}

    @classmethod
    def open(
        cls, settings: Settings | None = None, *, embedder: Embedder | None = None, **overrides: Any
    ) -> KnowledgeBase:
        """A knowledge base from settings (read from bekb.toml and BEKB_* when not given).

        `embedder` replaces the configured model for indexing and queries alike (tests, or
        an application that already holds a loaded model).
        """
        if settings is None:
            settings = Settings.load(**overrides)
        elif overrides:
            settings = Settings.load(**{**settings.model_dump(exclude_unset=True), **overrides})
        return cls(settings, embedder=embedder)

    # -- parts, created on first use ---------------------------------------------------------

    @property
    def store(self) -> ChromaStore:
        """The Chroma store (embedded under the index dir, or the configured server)."""
        if self._store is None:
            from bekb.store import ChromaStore

            self._store = ChromaStore(
                index_dir=self.settings.index_dir, url=self.settings.chroma_url
            )
        return self._store

    def _open_or_replace_store(self) -> ChromaStore:
        """The store, opened for writing (under the write lock); an embedded store too
        damaged to open is set aside and rebuilt (cached embeddings make that cheap)."""
        from bekb.errors import StoreError
        from bekb.store import set_aside

        try:
            return self.store
        except StoreError:
            folder = self.settings.index_dir / "chroma"
            if self.settings.chroma_url or not folder.exists():
                raise
            set_aside(folder)
            return self.store

    def _retrieval(self) -> Retriever:
        if self._retriever is None:
            from functools import partial

            from bekb.retrieval.rerank import Reranker
            from bekb.retrieval.retriever import Retriever

            model = self.settings.rerank_model
            self._retriever = Retriever(
                self.store,
                self.settings.index_dir,
                self._query_embedder,
                partial(Reranker, model) if model else None,
                self.settings.fusion,
                adapt=self.settings.query_adapter,
            )
        return self._retriever

    def _model(self) -> ModelSpec:
        from bekb.embedding import resolve_model

        return resolve_model(self.settings.embed_model)

    def selection(self) -> Selection:
        """The files the settings select under the root (reused while no folder changed)."""
        if self._selection is not None and self._selection.still_current():
            return self._selection
        s = self.settings
        self._selection = select_files(
            s.root, agent_files=s.agent_files, scope=s.scope, include=s.include, exclude=s.exclude
        )
        return self._selection

    # -- corpus ------------------------------------------------------------------------------

    def sync(self, *, mirror: Path | None = None, lock_file: Path | None = None) -> SyncReport:
        """Fill the root with the pinned corpus, from upstream or a local mirror, verified."""
        from dataclasses import replace

        from bekb.corpus.manifest import missing_from_lock, read_lock, repin_command
        from bekb.corpus.sync import sync_corpus

        s = self.settings
        lock = read_lock(lock_file or s.lock_file)
        report = sync_corpus(lock, s.root, mirror=mirror, raw_url=s.corpus_raw_url)
        if not report.ok:
            return report
        missing = missing_from_lock(lock, self.selection())
        repin = repin_command(mirror or s.root, s.agent_files) if missing else ""
        return replace(report, unpinned=tuple(missing), repin=repin)

    # -- indexing ----------------------------------------------------------------------------

    def index(
        self, *, full: bool = False, on_progress: Callable[[Progress], None] | None = None
    ) -> IndexReport:
        """Bring the index up to date with the corpus (only what changed, unless `full`)."""
        from bekb.embedding import EmbeddingCache, ModelSpec, TokenizerCounter, index_model
        from bekb.indexing.indexer import BuildSettings, Indexer
        from bekb.indexing.lock import write_lock

        selection = self.selection()
        backend = self.settings.index_backend
        spec = index_model(self._model(), backend)
        timeout = self.settings.lock_timeout
        with (
            write_lock(self.settings.index_dir, timeout),
            self._open_or_replace_store().writer_lease(timeout),
        ):
            cache = EmbeddingCache(self.settings.index_dir / "embeddings.sqlite")
            counter = TokenizerCounter.for_model(spec)
            if self._embedder is not None:  # an injected model is its own identity
                spec = ModelSpec(self._embedder.model_id, spec.path)
            indexer = Indexer(
                store=self.store,
                index_dir=self.settings.index_dir,
                build=BuildSettings(spec, self.settings.chunk_tokens),
                counter=counter,
                embedder=lambda texts: self._index_embedder(spec, texts),
                cache=cache,
                on_progress=on_progress,
                adapt=self.settings.query_adapter,
            )
            try:
                report = indexer.run(selection, full=full)
                self._ensure_query_export(spec)
            finally:
                cache.close()
        self._retriever = None
        return report

    def _index_embedder(self, spec: ModelSpec, texts: Sequence[str]) -> Embedder:
        """The model that embeds chunks, loaded once per knowledge base (watch mode reuses
        it); `texts` are what the build embeds, a sample of them checks a new export."""
        from bekb.embedding import index_embedder

        if self._embedder is not None:
            return self._embedder
        # Settings (and so the backend) are fixed per knowledge base: the model decides.
        if spec.fingerprint not in self._index_models:
            self._index_models[spec.fingerprint] = index_embedder(
                spec,
                self.settings.index_backend,
                self._onnx_dir,
                texts,
                batch_size=self.settings.embed_batch_size,
            )
        return self._index_models[spec.fingerprint]

    def watch(
        self,
        *,
        debounce_ms: int = 400,
        on_rebuild: RebuildCallback,
        on_error: ErrorCallback,
        stop_event: Event | None = None,
    ) -> None:
        """Index now, then again after every burst of file changes, until stopped.

        Each rebuild's report goes to `on_rebuild`; a failed rebuild's BekbError goes to
        `on_error` and watching continues. Returns when `stop_event` is set or on Ctrl-C.
        """
        from bekb.indexing.watch import watch

        watch(
            self,
            debounce_ms=debounce_ms,
            on_rebuild=on_rebuild,
            on_error=on_error,
            stop_event=stop_event,
        )

    def _ensure_query_export(self, spec: ModelSpec) -> None:
        """Make the ONNX export queries embed with, once per model, if the build did not."""
        from bekb.embedding import ensure_export, export_intact

        if self.settings.query_backend == "torch" or spec.path is None or self._embedder:
            return
        folder = self._onnx_folder(spec.fingerprint)
        if export_intact(folder):
            return
        meta = self.store.active()
        samples = [c.embed_text for c in self.store.get_chunks(meta.collection)] if meta else []
        # A model ONNX cannot reproduce is still served, through sentence-transformers.
        with contextlib.suppress(EmbeddingError):
            ensure_export(spec, self._onnx_dir, samples)

    @property
    def _onnx_dir(self) -> Path:
        """Where the model exports live, one folder per model fingerprint."""
        return self.settings.index_dir / "onnx"

    def _onnx_folder(self, model_fingerprint: str) -> Path:
        return self._onnx_dir / model_fingerprint

    def _query_embedder(self, meta: IndexMeta) -> Embedder:
        from bekb.embedding import (
            OnnxEmbedder,
            SentenceTransformerEmbedder,
            resolve_model,
        )

        if self._embedder is not None:
            return self._embedder
        folder = self._onnx_folder(meta.model_fingerprint)
        backend = self.settings.query_backend
        if backend != "torch" and (folder / "meta.json").exists():
            try:
                return OnnxEmbedder(folder)
            except EmbeddingError:
                if backend == "onnx":
                    raise
                # auto: a damaged export still answers, through sentence-transformers
        if backend == "onnx":
            raise EmbeddingError(f"no ONNX export in {folder}: run `bekb index`")
        return SentenceTransformerEmbedder(resolve_model(meta.embed_model))

    # -- reading -----------------------------------------------------------------------------

    def search(self, query: str, *, k: int | None = None, refresh: bool = False) -> list[Hit]:
        """The `k` best passages for `query`, best first.

        Hits from files changed since indexing are marked `stale`; with `refresh` (or the
        `auto_refresh` setting) the changed files are re-indexed first.
        """
        return list(self._search(query, k, refresh=refresh).hits)

    def _search(
        self, query: str, k: int | None, *, refresh: bool = False, check_fresh: bool = True
    ) -> SearchResult:
        text = _check_text(query, "query")
        count = self.settings.k if k is None else k
        if count < 1:
            raise UsageError(f"k must be at least 1 (got {count})")
        selection = self.selection()  # walked once: a glob-made selection is never reused
        stale, snapshot = self._stale_after(refresh, selection) if check_fresh else (set(), None)
        # A passage copied between plugins is cited from the specialist's own file.
        result = self._retrieval().search(
            text, min(count, MAX_K), snapshot=snapshot, preferred=selection.cited
        )
        if not stale:
            return result
        hits = tuple(replace(h, stale=True) if h.path in stale else h for h in result.hits)
        return replace(result, hits=hits)

    def stale(self) -> tuple[FileStatus, ...]:
        """Files added, changed or deleted since the last index.

        Cheap: a file whose size and mtime match the index is not read; only the others are
        hashed.
        """
        return self.corpus_status().stale

    def _stale_after(self, refresh: bool, selection: Selection) -> tuple[set[str], Snapshot | None]:
        """Files changed since the index was built (none after a refresh), and the index
        generation they were compared with, for the search to read: the stale marks then
        describe the very hits returned, and the registry is read from Chroma once."""
        try:
            snapshot = self._retrieval().snapshot()
        except IndexNotBuiltError:
            if refresh or self.settings.auto_refresh:
                self.index()
            return set(), None
        todo = self._plan_against(snapshot.records, selection)
        stale = {f.source.path for f in todo.work} | set(todo.deleted)
        if stale and (refresh or self.settings.auto_refresh):
            self.index()
            return set(), None
        return stale, snapshot

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        persona: str | None = None,
        use_llm: bool | None = None,
        refresh: bool = False,
        on_text: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer `question` from the corpus, in the persona's voice, with citations.

        With an API key (and `use_llm` not False) Claude writes the answer; otherwise, or when
        the API is briefly unavailable, the best passages are quoted. Nothing relevant found
        gives `mode == "abstain"`.
        """
        from bekb.answering.extractive import (
            ENABLE_HINT,
            PASSAGES,
            abstention,
            extractive_answer,
        )
        from bekb.answering.persona import load_persona

        question = _check_text(question, "question")
        who = load_persona(check_root(self.settings.root), persona or self.settings.agent_files[0])
        result = self._search(question, k, refresh=refresh)
        hits = result.hits
        if self._off_topic(result):
            return Answer(question, "abstain", abstention(question, hits), (), hits, who.name)
        wants_llm = self.settings.llm_enabled if use_llm is None else use_llm
        notice = ENABLE_HINT
        if wants_llm:
            from bekb.errors import AnswerError

            try:
                text, citations = self._claude(question, hits, who, on_text)
                return Answer(question, "llm", text, citations, hits, who.name)
            except AnswerError as exc:
                if not exc.transient:
                    raise
                notice = f"{exc} — showing the best passages instead."
        text, citations = extractive_answer(self._quotable(hits, PASSAGES), persona=who.name)
        return Answer(question, "extractive", text, citations, hits, who.name, notice)

    def _quotable(self, hits: Sequence[Hit], count: int) -> list[Hit]:
        """The best `count` passages with whole code blocks, none inside another."""
        from bekb.answering.extractive import whole_code_blocks

        meta = self._active()
        records = self.store.files(meta.collection)
        out: list[Hit] = []
        for hit in hits:
            record = records.get(hit.path)
            chunks = self.store.get_chunks(meta.collection, record.chunk_ids) if record else []
            passage = whole_code_blocks(hit, chunks)
            if not any(
                q.path == passage.path
                and q.start_line <= passage.start_line
                and passage.end_line <= q.end_line
                for q in out
            ):
                out.append(passage)
            if len(out) == count:
                break
        return out

    def _off_topic(self, result: SearchResult) -> bool:
        s = self.settings
        return result.off_topic(min_similarity=s.abstain_threshold, min_coverage=s.abstain_coverage)

    def _claude(self, question: str, hits: Any, who: Any, on_text: Any) -> Any:
        from bekb.answering.llm import answer_with_claude, make_client
        from bekb.answering.persona import system_prompt
        from bekb.errors import ConfigError

        s = self.settings
        if not s.llm_enabled or s.anthropic_api_key is None:
            raise ConfigError("--llm anthropic needs ANTHROPIC_API_KEY")
        client = make_client(
            api_key=s.anthropic_api_key.get_secret_value(),
            base_url=s.anthropic_base_url,
            timeout=s.llm_timeout,
        )
        return answer_with_claude(
            client,
            model=s.llm_model,
            max_tokens=s.llm_max_tokens,
            system=system_prompt(who),
            question=question,
            hits=hits,
            on_text=on_text,
        )

    def evaluate(self, questions_file: Path) -> EvalReport:
        """Score retrieval on golden questions (eval/dev.jsonl format).

        `corpus: full` questions count only when the index covers the whole workspace.
        """
        from bekb.evaluation import Outcome, Question, evaluate, read_questions

        questions = read_questions(questions_file)

        def retrieve(question: Question) -> Outcome:
            result = self._search(question.question, 10, check_fresh=False)
            return Outcome(
                paths=tuple(h.path for h in result.hits),
                copies=tuple(tuple(c.path for c in h.copies) for h in result.hits),
                texts=tuple(h.text for h in result.hits),
                abstained=self._off_topic(result),
            )

        whole = self.settings.scope == "workspace"
        return evaluate(questions, retrieve, include=lambda q: whole or q.corpus != "full")

    # -- status ------------------------------------------------------------------------------

    def corpus_status(self) -> CorpusStatus:
        """Every selected file compared with the index: indexed, new, changed or deleted."""
        meta = self._active_or_none()
        return self._compare(self.store.files(meta.collection) if meta else {})

    def _plan_against(self, records: dict[str, FileRecord], selection: Selection) -> Plan:
        """The selected files compared with `records`, trusting size and mtime where they
        match the record, or what an earlier comparison found the file's content to be."""
        seen = {
            path: replace(records[path], size=source.size, mtime_ns=source.mtime_ns)
            for path, source in self._restat.items()
            if path in records and records[path].sha256 == source.sha256
        }
        todo = plan(selection.root, selection.files, {**records, **seen}, trust_stat=True)
        self._restat.update((source.path, source) for source in todo.restat)
        return todo

    def _compare(self, records: dict[str, FileRecord]) -> CorpusStatus:
        selection = self.selection()
        todo = self._plan_against(records, selection)
        files = [FileStatus(f.source.path, "new", f.source.sha256) for f in todo.new]
        files += [FileStatus(f.source.path, "changed", f.source.sha256) for f in todo.changed]
        files += [FileStatus(p, "indexed", records[p].sha256) for p in todo.unchanged]
        files += [FileStatus(p, "deleted", records[p].sha256) for p in todo.deleted]
        return CorpusStatus(
            root=str(selection.root),
            files=tuple(sorted(files, key=lambda f: f.path)),
            unresolved=selection.unresolved,
            refused=selection.refused,
        )

    def status(self) -> IndexStatus:
        """The index at a glance: what built it, how big it is, what is stale."""
        from bekb.retrieval.adapter import stored_adapter

        meta = self._active_or_none()
        records = self.store.files(meta.collection) if meta else {}
        stale = self._compare(records).stale
        folder = self._onnx_folder(meta.model_fingerprint) if meta else None
        backend = "onnx" if folder and (folder / "meta.json").exists() else "sentence-transformers"
        return IndexStatus(
            root=str(self.settings.root.resolve()),
            index_dir=str(self.settings.index_dir.resolve()),
            agent_files=tuple(json.loads(meta.agent_files)) if meta else self.settings.agent_files,
            built=meta is not None,
            embed_model=meta.embed_model if meta else self.settings.embed_model,
            dimensions=meta.dimensions if meta else 0,
            chunker_version=meta.chunker_version if meta else "",
            files=len(records),
            chunks=sum(len(r.chunk_ids) for r in records.values()),
            last_build=meta.built_at if meta else None,
            last_build_seconds=meta.build_seconds if meta else None,
            store=self.store.mode,
            size_bytes=_folder_size(self.settings.index_dir),
            stale=stale,
            query_backend=backend if meta else "",
            query_adapter=bool(
                meta and self.settings.query_adapter and stored_adapter(self.store, meta)
            ),
        )

    def sources(self) -> list[Source]:
        """Indexed files with their titles and descriptions."""
        from bekb.chunking.blocks import split_lines
        from bekb.chunking.markdown import parse_frontmatter

        meta = self._active()
        root = check_root(self.settings.root)
        out = []
        for path, record in sorted(self.store.files(meta.collection).items()):
            title, description = Path(path).stem, ""
            full = (root / path).resolve()
            with contextlib.suppress(OSError, UnicodeDecodeError):
                # a file swapped for a link out of the root since indexing is never read
                head = full.read_text(encoding="utf-8")[:4000] if full.is_relative_to(root) else ""
                front = parse_frontmatter(split_lines(head))
                if front is not None:
                    title = front.name or title
                    description = front.description
            out.append(Source(path, title, description, len(record.chunk_ids)))
        return out

    def document(self, path: str) -> str:
        """The full text of an indexed file; paths outside the indexed set are refused."""
        meta = self._active()
        if path not in self.store.files(meta.collection):
            raise UsageError(f"{path!r} is not an indexed file (see `bekb corpus status`)")
        root = check_root(self.settings.root)
        full = (root / path).resolve()
        if not full.is_relative_to(root):
            raise UsageError(f"{path!r} is outside the workspace root")
        return full.read_text(encoding="utf-8")

    def is_built(self) -> bool:
        """Whether an index has been committed (searches can run)."""
        return self._active_or_none() is not None

    def _active(self) -> IndexMeta:
        meta = self._active_or_none()
        if meta is None:
            raise IndexNotBuiltError("no index yet: run `bekb index` first")
        return meta

    def _active_or_none(self) -> IndexMeta | None:
        return self.store.active()


def _check_text(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise UsageError(f"the {what} must be text")
    if len(text) > MAX_QUESTION_CHARS:
        raise UsageError(f"the {what} is {len(text)} characters; the limit is {MAX_QUESTION_CHARS}")
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text).strip()
    if not cleaned:
        raise UsageError(f"the {what} is empty")
    return cleaned


def _folder_size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*") if folder.exists() else ():
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total
