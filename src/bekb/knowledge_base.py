"""KnowledgeBase: index, search, ask and status over one workspace; the product's public face.

It wires the parts and holds what lives as long as it does (the store, the models, the
selection, the freshness memo); each part's logic lives in its own module.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bekb.corpus.agents import agent_key
from bekb.corpus.selection import Selection, check_root, select_files
from bekb.domain import (
    Agent,
    AgentList,
    Answer,
    CorpusStatus,
    Excerpt,
    FileStatus,
    Hit,
    IndexMeta,
    IndexReport,
    IndexStatus,
    Persona,
    Progress,
    Source,
    SyncReport,
    Turn,
)
from bekb.errors import ConfigError, CorpusError, IndexNotBuiltError, StoreError, UsageError
from bekb.indexing.freshness import RECHECK_SECONDS, Freshness
from bekb.inputs import MAX_K, check_k, check_persona, check_text
from bekb.settings import Settings

if TYPE_CHECKING:
    from threading import Event

    from bekb.answering.conversation import Conversation
    from bekb.answering.expansion import Expansion
    from bekb.corpus.manifest import Lock
    from bekb.embedding.backends import EmbeddingModels
    from bekb.embedding.model import Embedder
    from bekb.embedding.tokenizer import ModelTokenizer
    from bekb.evaluation import Report as EvalReport
    from bekb.indexing.watch import ErrorCallback, RebuildCallback
    from bekb.integrations.llama_index import (
        LLM,
        BekbRetriever,
        QueryEngineTool,
        RetrieverQueryEngine,
        RetrieverTool,
    )
    from bekb.retrieval.retriever import Retriever, SearchResult, Snapshot
    from bekb.store import ChromaStore


# Hits each search contributes when the question's and its rewrites' are fused.
FUSION_DEPTH = 30
# Passages a follow-up search of Claude's returns.
FOLLOW_UP_K = 5


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
        self._models: EmbeddingModels | None = None
        self._tokenizer: ModelTokenizer | None = None
        self._freshness = Freshness()
        # Searches may run in several threads at once (the MCP server's tools): the parts
        # are made once, under this lock; what they hold is safe to share (measured in
        # tests/mcp/test_concurrency.py).
        self._parts = threading.RLock()

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
            from bekb.store import open_store

            with self._parts:
                if self._store is None:
                    s = self.settings
                    self._store = open_store(s.index_dir, s.chroma_url, timeout=s.chroma_timeout)
        return self._store

    @property
    def models(self) -> EmbeddingModels:
        """The embedding models for chunks and queries, as the settings choose them."""
        if self._models is None:
            from bekb.embedding.backends import EmbeddingModels

            s = self.settings
            with self._parts:
                self._models = self._models or EmbeddingModels(
                    embed_model=s.embed_model,
                    index_backend=s.index_backend,
                    query_backend=s.query_backend,
                    exports_dir=s.cache_folder / "onnx",
                    legacy_exports=s.index_dir / "onnx",
                    batch_size=s.embed_batch_size,
                    injected=self._embedder,
                )
        return self._models

    def _writable_store(self, replace: bool = False) -> ChromaStore:
        """The store, opened for writing (under the write lock; see `open_store`); with
        `replace`, the damaged embedded store is set aside first."""
        from bekb.store import open_store, set_aside

        with self._parts:
            if replace and self._store is not None and self._store.folder is not None:
                self._store.close()
                set_aside(self._store.folder)
                self._store = None
            if self._store is None:
                s = self.settings
                self._store = open_store(
                    s.index_dir, s.chroma_url, timeout=s.chroma_timeout, replace_damaged=True
                )
            return self._store

    def _retrieval(self) -> Retriever:
        if self._retriever is None:
            from bekb.retrieval.rerank import Reranker
            from bekb.retrieval.retriever import Retriever

            model = self.settings.rerank_model
            with self._parts:
                self._retriever = self._retriever or Retriever(
                    self.store,
                    self.settings.index_dir,
                    self.models.for_queries,
                    partial(Reranker, model) if model else None,
                    self.settings.fusion,
                    adapt=self.settings.query_adapter,
                )
        return self._retriever

    def selection(self, *, max_age: float = 0.0) -> Selection:
        """The files the settings select under the root (reused while no folder changed;
        with `max_age`, reused unchecked for that many seconds after the last check)."""
        s = self.settings
        make = partial(
            select_files, s.root, agent_files=s.agent_files, scope=s.scope, include=s.include,
            exclude=s.exclude,
        )  # fmt: skip
        with self._parts:
            return self._freshness.selection(make, max_age=max_age)

    # -- corpus ------------------------------------------------------------------------------

    def sync(self, *, mirror: Path | None = None, lock_file: Path | None = None) -> SyncReport:
        """Fill the root with the pinned corpus, from upstream or a local mirror, verified."""
        from bekb.corpus.sync import sync_workspace

        return sync_workspace(self.settings, self.selection, mirror=mirror, lock_file=lock_file)

    def pin(self, *, out: Path | None = None, agent_files: Sequence[str] = ()) -> Lock:
        """Pin what the agent files (default: the configured ones) cite under the root,
        with the repositories' commits from its SOURCES.json, into the lock file `out`
        (default: the `lock_file` setting); the lock written."""
        from bekb.corpus.manifest import build_lock, save_lock

        lock = build_lock(check_root(self.settings.root), agent_files or self.settings.agent_files)
        save_lock(lock, out or self.settings.lock_file)
        return lock

    # -- indexing ----------------------------------------------------------------------------

    def index(
        self, *, full: bool = False, on_progress: Callable[[Progress], None] | None = None
    ) -> IndexReport:
        """Bring the index up to date with the corpus (only what changed, unless `full`)."""
        from bekb.indexing.build import build_index

        report = build_index(
            self.settings,
            self.selection,
            self._writable_store,
            self.models,
            full=full,
            on_progress=on_progress,
        )
        self._retriever = None
        return report

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

    # -- reading -----------------------------------------------------------------------------

    def search(self, query: str, *, k: int | None = None, refresh: bool = False) -> list[Hit]:
        """The `k` best passages for `query`, best first.

        Hits from files changed since indexing are marked `stale`, and files deleted since
        are left out; with `refresh` (or the `auto_refresh` setting) the changed files are
        re-indexed first.
        """
        return list(self._search(query, k, refresh=refresh).hits)

    def _search(
        self,
        query: str,
        k: int | None,
        *,
        refresh: bool = False,
        check_fresh: bool = True,
        agent: str | None = None,
    ) -> SearchResult:
        """With `agent` (a configured agent file's path), only the files it answers from
        are searched (`Selection.own_files`)."""
        text = check_text(query, "query")
        count = check_k(k) or self.settings.k
        # Checked at most once per RECHECK_SECONDS (a glob-made one walked again each time);
        # the files of the hits returned are compared after every search, below.
        window = 0.0 if refresh else RECHECK_SECONDS  # asked to refresh: compare all now
        selection = self.selection(max_age=window)
        allowed = selection.own_files(agent) if agent else None
        if allowed is not None and len(allowed) == len(selection.files):
            allowed = None  # its own set is the whole index (one agent file): no filter
        stale, snapshot = (
            self._stale_after(refresh, selection, window) if check_fresh else (set(), None)
        )
        if snapshot is None and not self._has_store():
            raise IndexNotBuiltError("no index yet: run `bekb index` first")
        # A file deleted since indexing is not searched: its passages can be neither opened
        # nor trusted. A changed one is, its hits marked stale.
        gone = _deleted(selection.root, stale)
        result = self._find(text, count, snapshot, selection.cited, allowed, gone)
        if snapshot is not None:
            returned = {h.path for h in result.hits}
            moved = self._freshness.stale_among(snapshot.records, selection.root, returned)
            if moved - stale and (refresh or self.settings.auto_refresh):
                self.index()  # changed within the last RECHECK_SECONDS: search again, fresh
                return self._search(query, k, check_fresh=check_fresh, agent=agent)
            stale |= moved
            if dropped := _deleted(selection.root, moved):  # within the last RECHECK_SECONDS
                gone |= dropped
                result = self._find(text, count, snapshot, selection.cited, allowed, gone)
        if not stale:
            return result
        hits = tuple(replace(h, stale=True) if h.path in stale else h for h in result.hits)
        return replace(result, hits=hits)

    def _find(
        self,
        text: str,
        count: int,
        snapshot: Snapshot | None,
        preferred: Collection[str],
        allowed: Collection[str] | None,
        gone: set[str],
    ) -> SearchResult:
        """The retriever's search of the files `allowed` (None: all) but those `gone`."""
        # A passage copied between plugins is cited from the specialist's own file.
        return self._retrieval().search(
            text,
            min(count, MAX_K),
            snapshot=snapshot,
            preferred=preferred,
            allowed=allowed,
            left_out=gone,
        )

    def _search_expanded(
        self,
        query: str,
        k: int | None,
        *,
        expand: bool | None,
        refresh: bool = False,
        check_fresh: bool = True,
        agent: str | None = None,
        earlier: Sequence[str] = (),
    ) -> tuple[SearchResult, Expansion]:
        """`_search`, and with query expansion (`expand`, or the setting when None; only
        with an API key) also a search for each of Claude's rewrites of `query`, the runs
        fused with the question's own (`fuse_runs`). Whether the corpus covers the question
        is judged on the question's own words: a name the corpus never uses, or a vocabulary
        it mostly lacks, is not made covered by a rewrite. Only the nearest passage may be
        one a rewrite found: a question worded far from the documents (a paraphrase) is not
        taken for off-topic when Claude's rewording of it lands close to a passage.

        After `earlier` questions (a conversation), the question is searched together with
        the one before it, which judges coverage ("and how do I test them?" means nothing
        alone), and on its own as one more run."""
        from bekb.answering.expansion import Expansion, expand_question

        count = check_k(k) or self.settings.k
        wanted = self.settings.expand if expand is None else expand
        check_text(query, "query")
        rewrites = expand_question(query, self.settings, earlier) if wanted else Expansion()
        base, others = query, list(rewrites.queries)
        if earlier:
            base, others = f"{earlier[-1]} {query}", [query, *others]
        if not others:
            found = self._search(base, count, refresh=refresh, check_fresh=check_fresh, agent=agent)
            return found, rewrites
        from bekb.retrieval.fusion import fuse_runs, run_weights

        depth = max(count, FUSION_DEPTH)
        result = self._search(base, depth, refresh=refresh, check_fresh=check_fresh, agent=agent)
        runs = [self._search(q, depth, check_fresh=check_fresh, agent=agent) for q in others]
        nearest = [r.best_similarity for r in runs]
        weights = run_weights(result.best_similarity, nearest)
        fused = fuse_runs([result.hits, *(r.hits for r in runs)], weights)
        # Only a rewrite's nearest passage counts for coverage, not a follow-up's own run.
        best = max([result.best_similarity, *nearest[len(others) - len(rewrites.queries) :]])
        return replace(result, hits=tuple(fused[:count]), best_similarity=best), rewrites

    def stale(self) -> tuple[FileStatus, ...]:
        """Files added, changed or deleted since the last index.

        Cheap: a file whose size and mtime match the index is not read; only the others are
        hashed.
        """
        return self.corpus_status().stale

    def _stale_after(
        self, refresh: bool, selection: Selection, max_age: float
    ) -> tuple[set[str], Snapshot | None]:
        """Files changed since the index was built (none after a refresh; a comparison at
        most `max_age` seconds old), and the index generation they were compared with, for
        the search to read: the stale marks then describe the very hits returned, and the
        registry is read from Chroma once."""
        try:
            if not self._has_store():
                raise IndexNotBuiltError("no index yet")
            snapshot = self._retrieval().snapshot()
        except IndexNotBuiltError:
            if refresh or self.settings.auto_refresh:
                self.index()
            return set(), None
        stale = self._freshness.stale_paths(snapshot.records, selection, max_age=max_age)
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
        expand: bool | None = None,
        on_search: Callable[[str], None] | None = None,
        history: Sequence[Turn] = (),
    ) -> Answer:
        """Answer `question` from the corpus, in the persona's voice, with citations.

        `use_llm`: None (the default) lets Claude write the answer when an API key is set,
        quoting the best passages instead when the API is briefly unavailable; True requires
        Claude (an API failure raises AnswerError); False quotes passages. Nothing relevant
        found gives `mode == "abstain"`.

        With Claude, the question is also searched as Claude rewrites it (`expand`, default
        the `expand` setting), and Claude may search again (up to `max_searches` times;
        each query goes to `on_search`) before it answers. `history` holds the earlier turns
        of a conversation (see `chat`).

        A `persona` among the configured agent files answers from its own files (see
        `Selection.own_files`); another answers from the whole index, and
        `Answer.persona_notice` says so. Without one, the whole index is searched.
        """
        from bekb.answering.answer import compose

        question = check_text(question, "question")
        who = self.persona(persona)
        agent, notice = self._persona_sources(persona, who)
        result, rewrites = self._search_expanded(
            question,
            k,
            refresh=refresh,
            agent=agent,
            expand=expand if use_llm is not False else False,
            earlier=[turn.question for turn in history],
        )

        def follow_up(query: str) -> Sequence[Hit]:
            return self._search(query, FOLLOW_UP_K, agent=agent).hits

        answer = compose(
            question,
            result.hits,
            who,
            off_topic=self._off_topic(result),
            uncovered=[t.text for t in result.missing],
            use_llm=use_llm,
            settings=self.settings,
            on_text=on_text,
            expansion=rewrites,
            search=follow_up,
            on_search=on_search,
            history=history,
        )
        return replace(answer, persona_notice=notice) if notice else answer

    def chat(
        self,
        *,
        k: int | None = None,
        persona: str | None = None,
        use_llm: bool | None = None,
        expand: bool | None = None,
    ) -> Conversation:
        """A conversation: each `Conversation.ask` answers as `ask` does, with the turns
        before it, so a follow-up is understood in context.

        Example:
            chat = kb.chat()
            chat.ask("how do I implement a saga?")
            chat.ask("and how do I test the compensations?")
        """
        from bekb.answering.conversation import Conversation

        return Conversation(partial(self.ask, k=k, persona=persona, use_llm=use_llm, expand=expand))

    def _persona_sources(self, asked: str | None, who: Persona) -> tuple[str | None, str]:
        """The configured agent file whose own files an answer as `who` searches (None: the
        whole index), and the notice saying why not when `asked` names another one."""
        if asked is None:
            return None, ""
        if agent_key(who.path) in {agent_key(a) for a in self.settings.agent_files}:
            return who.path, ""
        return None, (
            f"{who.name} ({who.path}) is not among the configured agent files "
            "(agent_files): answered from the whole index"
        )

    def persona(self, name_or_path: str | None = None) -> Persona:
        """The agent file answers speak as: by name, file stem or path under the root
        (default: the first configured agent file)."""
        from bekb.answering.persona import parse_agent_file
        from bekb.corpus.agents import load_agent_file

        name_or_path = check_persona(name_or_path)
        if not name_or_path and not self.settings.agent_files:
            raise UsageError(
                "no agent file configured: set agent_files in bekb.toml or pass --as PATH"
            )
        wanted = name_or_path or self.settings.agent_files[0]
        try:
            rel, text = load_agent_file(
                check_root(self.settings.root), wanted, self.settings.agent_files
            )
        except (UsageError, CorpusError) as exc:
            if name_or_path:
                raise
            raise ConfigError(
                f"the default persona's agent file {wanted} (the first of agent_files) cannot "
                "be read: restore it, change agent_files in bekb.toml or pass --as NAME"
            ) from exc
        return parse_agent_file(text, rel)

    def personas(self) -> list[Persona]:
        """Every agent file under the root that answers can speak as (`persona(name)`),
        sorted by name; files that cannot be read are left out."""
        from bekb.answering.persona import parse_agent_file
        from bekb.corpus.agents import find_agent_files, load_agent_file

        root = check_root(self.settings.root)
        found = []
        for rel in find_agent_files(root, self.settings.agent_files).values():
            try:
                path, text = load_agent_file(root, rel)
            except CorpusError:
                continue
            found.append(parse_agent_file(text, path))
        return sorted(found, key=lambda p: p.name)

    def agents(self) -> AgentList:
        """The configured agent files, each with the number of files it cites and answers
        from that the index holds (0 before the first build), then the other agent files
        under the root (`bekb personas`)."""
        from bekb.answering.persona import parse_agent_file
        from bekb.corpus.agents import load_agent_file

        root = check_root(self.settings.root)
        selection = self.selection()
        meta = self._active_or_none()
        indexed = set(self.store.files(meta.collection)) if meta else set()
        configured = []
        for rel in dict.fromkeys(agent_key(a) for a in self.settings.agent_files):
            try:
                path, text = load_agent_file(root, rel)
            except CorpusError:
                continue  # outside the root: `bekb corpus status` reports it
            who = parse_agent_file(text, path)
            cited = selection.agent_sources.get(rel, frozenset())
            own = selection.own_files(rel) or frozenset()
            configured.append(
                Agent(who.name, who.path, who.description, len(cited & indexed), len(own & indexed))
            )
        mine = {a.path for a in configured}
        others = (Agent(p.name, p.path, p.description) for p in self.personas())
        return AgentList(tuple(configured), tuple(a for a in others if a.path not in mine))

    def _off_topic(self, result: SearchResult) -> bool:
        s = self.settings
        return result.off_topic(min_similarity=s.abstain_threshold, min_coverage=s.abstain_coverage)

    def evaluate(self, questions_file: Path) -> EvalReport:
        """Score retrieval on golden questions (eval/dev.jsonl format).

        `corpus: full` questions count only when the index covers the whole workspace.
        """
        from bekb.evaluation import Outcome, Question, evaluate, read_questions

        def retrieve(question: Question) -> Outcome:
            result, _ = self._search_expanded(question.question, 10, check_fresh=False, expand=None)
            return Outcome.of(result.hits, abstained=self._off_topic(result))

        whole = self.settings.scope == "workspace"
        questions = read_questions(questions_file)
        return evaluate(questions, retrieve, include=lambda q: whole or q.corpus != "full")

    # -- status ------------------------------------------------------------------------------

    def corpus_status(self) -> CorpusStatus:
        """Every selected file compared with the index: indexed, new, changed or deleted."""
        meta = self._active_or_none()
        records = self.store.files(meta.collection) if meta else {}
        return self._freshness.corpus_status(records, self.selection())

    def status(self) -> IndexStatus:
        """The index at a glance: what built it, how big it is, what is stale."""
        from bekb.files import folder_size
        from bekb.indexing.lock import not_a_folder
        from bekb.retrieval.adapter import stored_adapter
        from bekb.store.health import set_aside_stores

        try:
            problem = self.store.problem() if self._has_store() else None
            if self.settings.index_dir.exists() and not self.settings.index_dir.is_dir():
                problem = not_a_folder(self.settings.index_dir)
            meta = self._active_or_none()
            records = self.store.files(meta.collection) if meta else {}
        except StoreError as exc:
            if not exc.damaged:
                raise
            problem, meta, records = str(exc), None, {}
        selection = self.selection()
        stale = self._freshness.corpus_status(records, selection).stale
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
            store="server" if self.settings.chroma_url else "embedded",
            size_bytes=folder_size(self.settings.index_dir),
            stale=stale,
            query_backend=self.models.query_runtime(meta) if meta else "",
            index_backend=self.models.vectors_of(meta) if meta else "",
            rebuild_pending=self._rebuild_reason(meta) if meta else None,
            query_adapter=bool(
                meta and self.settings.query_adapter and stored_adapter(self.store, meta)
            ),
            store_problem=problem,
            set_aside=tuple(str(p) for p in set_aside_stores(self.settings.index_dir)),
            unusable_agents=selection.unusable_agents,
        )

    def _rebuild_reason(self, meta: IndexMeta) -> str | None:
        from bekb.indexing.indexer import BuildSettings

        build = BuildSettings(self.models.index_identity(), self.settings.chunk_tokens)
        return build.rebuild_reason(meta)

    def sources(self) -> list[Source]:
        """Indexed files with their titles and descriptions."""
        from bekb.corpus.documents import list_sources

        meta = self._active()
        return list_sources(check_root(self.settings.root), self.store.files(meta.collection))

    def document(self, path: str) -> str:
        """The full text of an indexed file; paths outside the indexed set are refused."""
        from bekb.corpus.documents import read_document

        meta = self._active()
        indexed = self.store.files(meta.collection)
        return read_document(check_root(self.settings.root), path, indexed)

    def show(
        self,
        place: str,
        *,
        start_line: int | None = None,
        end_line: int | None = None,
        indexed_only: bool = False,
    ) -> Excerpt:
        """Lines of a file under the root, named as a hit or citation prints them
        (`path:12-30`, a label, an absolute path); `start_line`/`end_line` override the
        range it names (either alone runs to the file's end or from its start). Needs no
        index unless `indexed_only` (then a file the index does not hold is refused).

        Raises:
            UsageError: the file is not under the root (or not indexed), or the range is
                outside it.
        """
        from bekb.corpus.documents import excerpt

        indexed = self.store.files(self._active().collection) if indexed_only else None
        return excerpt(
            check_root(self.settings.root),
            check_text(place, "place"),
            indexed,
            start_line=start_line,
            end_line=end_line,
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text as the embedding model's tokenizer counts them (the one
        tokenizer bekb has offline; the MCP server's result budget uses it)."""
        from bekb.embedding.tokenizer import ModelTokenizer

        with self._parts:
            if self._tokenizer is None:
                self._tokenizer = ModelTokenizer.for_model(self.models.tokenizer_model())
        return self._tokenizer.count(texts)

    # -- llama-index (bekb.integrations.llama_index, imported on first use) ------------------

    def as_retriever(self, *, k: int | None = None) -> BekbRetriever:
        """This knowledge base's search as a llama-index retriever: each hit a `TextNode`."""
        from bekb.integrations.llama_index import as_retriever

        return as_retriever(self, k)

    def as_query_engine(
        self, llm: LLM | None = None, *, k: int | None = None, **kwargs: Any
    ) -> RetrieverQueryEngine:
        """A llama-index query engine: `llm` answers from this knowledge base's passages
        (None: llama-index's `Settings.llm`); `kwargs` go to `RetrieverQueryEngine.from_args`."""
        from bekb.integrations.llama_index import as_query_engine

        return as_query_engine(self, llm, k, **kwargs)

    def as_tool(
        self,
        *,
        name: str = "bekb",
        description: str | None = None,
        k: int | None = None,
        llm: LLM | None = None,
    ) -> RetrieverTool | QueryEngineTool:
        """A llama-index agent tool: it returns passages, or with `llm` an answer."""
        from bekb.integrations.llama_index import as_tool

        return as_tool(self, name=name, description=description, k=k, llm=llm)

    def is_built(self) -> bool:
        """Whether an index has been committed (searches can run)."""
        return self._active_or_none() is not None

    def _active(self) -> IndexMeta:
        meta = self._active_or_none()
        if meta is None:
            raise IndexNotBuiltError("no index yet: run `bekb index` first")
        return meta

    def _active_or_none(self) -> IndexMeta | None:
        return self.store.active() if self._has_store() else None

    def _has_store(self) -> bool:
        """Whether there is a store to read: a server, or an embedded one already made
        (reading never creates one: `status` on an empty folder leaves it empty)."""
        if self._store is not None or self.settings.chroma_url:
            return True
        return (self.settings.index_dir / "chroma" / "chroma.sqlite3").is_file()


def _deleted(root: Path, paths: Collection[str]) -> set[str]:
    """Which of the indexed `paths` are no longer files under `root`."""
    return {path for path in paths if not (root / path).is_file()}
