"""bekb as llama-index components: its search as a retriever, query engine and agent tool,
and its chunking as a node parser."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import LLM
from llama_index.core.node_parser import NodeParser
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import (
    BaseNode,
    Document,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    TextNode,
)
from llama_index.core.tools import QueryEngineTool, RetrieverTool, ToolOutput

from bekb.chunking import CHUNKER_VERSION, TokenCounter, chunk_file
from bekb.domain import Hit
from bekb.errors import UsageError
from bekb.inputs import check_k
from bekb.settings import DEFAULT_EMBED_MODEL, Settings

__all__ = [
    # llama-index's own types, re-exported for the annotations of KnowledgeBase.as_*,
    # which may not import llama_index itself.
    "LLM",
    "BekbNodeParser",
    "BekbRetriever",
    "QueryEngineTool",
    "RetrieverQueryEngine",
    "RetrieverTool",
    "Searchable",
    "as_query_engine",
    "as_retriever",
    "as_tool",
    "hit_node",
]

# Document metadata keys that name the file, in the order they are tried.
PATH_KEYS = ("file_path", "path")
SEARCH_DESCRIPTION = (
    "Search the backend-engineering knowledge base (the skill documents a backend specialist "
    "cites: APIs, databases, messaging, sagas, CQRS, testing...). Input: a question or "
    "keywords. Returns the best passages, each with its location (path:start-end) and heading."
)
ANSWER_DESCRIPTION = (
    "Answer a backend-engineering question from the knowledge base (the skill documents a "
    "backend specialist cites). Input: the question. Returns an answer written from the "
    "best passages."
)
# What a hit node shows: an LLM reads where the passage is and what it is about; an
# embedding model reads the heading with the text, as bekb embeds it.
_HIT_LLM_KEYS = ("location", "heading")
_HIT_EMBED_KEYS = ("heading",)


class Searchable(Protocol):
    """What the retriever needs of a knowledge base (`bekb.KnowledgeBase` has it)."""

    def search(self, query: str, *, k: int | None = None) -> list[Hit]: ...


class BekbRetriever(BaseRetriever):
    """bekb's search as a llama-index retriever: each hit a `TextNode`, best first.

    The node id is the stable id of the hit's first chunk (`Hit.chunk_ids[0]`; all of them
    are in `metadata["chunk_ids"]`); the metadata holds path, heading, start_line,
    end_line, label, location and copies (the other paths holding the passage word for word).
    """

    def __init__(
        self,
        kb: Searchable,
        k: int | None = None,
        *,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.kb = kb
        self.k = check_k(k)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [hit_node(hit) for hit in self.kb.search(query_bundle.query_str, k=self.k)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # A search can take seconds (the first one loads the model): off the event loop.
        return await asyncio.to_thread(self._retrieve, query_bundle)


def hit_node(hit: Hit) -> NodeWithScore:
    """A hit as a scored llama-index node (see `BekbRetriever`)."""
    metadata: dict[str, Any] = {
        "path": hit.path,
        "heading": hit.heading,
        "start_line": hit.start_line,
        "end_line": hit.end_line,
        "label": hit.label,
        "location": hit.location,
        "copies": [copy.path for copy in hit.copies],
        "chunk_ids": list(hit.chunk_ids),
    }
    node = TextNode(
        id_=hit.chunk_ids[0] if hit.chunk_ids else hit.location,
        text=hit.text,
        metadata=metadata,
        excluded_llm_metadata_keys=[key for key in metadata if key not in _HIT_LLM_KEYS],
        excluded_embed_metadata_keys=[key for key in metadata if key not in _HIT_EMBED_KEYS],
    )
    return NodeWithScore(node=node, score=hit.score)


class _SearchTool(RetrieverTool):
    """A RetrieverTool that searches for its input as given: the stock one searches for
    "input is <query>" when an agent passes the argument by name, as agents do."""

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        query = _tool_input(args, kwargs)
        output = super().call(query)
        output.raw_input = {"input": query}
        return output

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        query = _tool_input(args, kwargs)
        output = await super().acall(query)
        output.raw_input = {"input": query}
        return output


def _tool_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if args:
        return str(args[0])
    if "input" in kwargs:
        return str(kwargs["input"])
    raise UsageError("the tool needs its input: a question or keywords")


def as_retriever(kb: Searchable, k: int | None = None) -> BekbRetriever:
    """A llama-index retriever over `kb`'s search (`k` hits; None: the configured default)."""
    return BekbRetriever(kb, k)


def as_query_engine(
    kb: Searchable, llm: LLM | None = None, k: int | None = None, **kwargs: Any
) -> RetrieverQueryEngine:
    """A `RetrieverQueryEngine` answering from `kb`'s passages with `llm` (None:
    llama-index's `Settings.llm`); `kwargs` go to `RetrieverQueryEngine.from_args`."""
    return RetrieverQueryEngine.from_args(as_retriever(kb, k), llm=llm, **kwargs)


def as_tool(
    kb: Searchable,
    *,
    name: str = "bekb",
    description: str | None = None,
    k: int | None = None,
    llm: LLM | None = None,
) -> RetrieverTool | QueryEngineTool:
    """An agent tool over `kb`: without `llm` a `RetrieverTool` returning passages (the
    agent's own model reads them), with `llm` a `QueryEngineTool` returning its answer."""
    if llm is None:
        return _SearchTool.from_defaults(
            retriever=as_retriever(kb, k), name=name, description=description or SEARCH_DESCRIPTION
        )
    return QueryEngineTool.from_defaults(
        query_engine=as_query_engine(kb, llm, k),
        name=name,
        description=description or ANSWER_DESCRIPTION,
    )


class BekbNodeParser(NodeParser):
    """bekb's chunking as a llama-index node parser: Markdown by heading, code by syntax,
    sized in the embedding model's own tokens, with exact line spans.

    Each document needs its file's path in `metadata["file_path"]` (or `"path"`): the
    suffix picks Markdown or code. Paths under `root` are made relative to it, as bekb names
    files; then a file's nodes are exactly the chunks bekb indexes (text, heading, line
    spans in the metadata, and ids).
    """

    embed_model: str = Field(
        default=DEFAULT_EMBED_MODEL,
        description="The model whose tokenizer sizes chunks (bekb's `embed_model`).",
    )
    chunk_tokens: int = Field(
        default=0,
        ge=0,
        description="Largest chunk in tokens, context header included; 0: the model's window.",
    )
    root: str | None = Field(
        default=None, description="Workspace root: paths under it are made relative to it."
    )
    _counter: TokenCounter | None = PrivateAttr(default=None)

    def __init__(self, *, counter: TokenCounter | None = None, **data: Any) -> None:
        """`counter` replaces the tokenizer of `embed_model` (loaded on first use)."""
        super().__init__(**data)
        self._counter = counter

    @classmethod
    def from_settings(cls, settings: Settings, **data: Any) -> BekbNodeParser:
        """The parser that chunks as an index built with `settings` does."""
        return cls(
            embed_model=settings.embed_model,
            chunk_tokens=settings.chunk_tokens,
            root=str(settings.root),
            **data,
        )

    @classmethod
    def class_name(cls) -> str:
        return "BekbNodeParser"

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        # The ingestion cache keys on this dict: a new chunker must not reuse old nodes.
        return {**super().to_dict(**kwargs), "chunker_version": CHUNKER_VERSION}

    @property
    def counter(self) -> TokenCounter:
        """The tokenizer chunks are measured with."""
        if self._counter is None:
            from bekb.embedding.model import resolve_model
            from bekb.embedding.tokenizer import ModelTokenizer

            self._counter = ModelTokenizer.for_model(resolve_model(self.embed_model))
        return self._counter

    def _parse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        out: list[BaseNode] = []
        for document in nodes:
            out.extend(self._chunk(document))
        return out

    def _chunk(self, document: BaseNode) -> list[BaseNode]:
        text = document.get_content(metadata_mode=MetadataMode.NONE)
        path = self._path(document)
        digest = hashlib.sha256(text.encode()).hexdigest()
        source = document.as_related_node_info()
        hidden = ["start_line", "end_line", "kind"]
        out: list[BaseNode] = []
        cursor = 0
        for chunk in chunk_file(path, text, digest, self.counter, max_tokens=self.chunk_tokens):
            # A chunk is an exact slice of the file and chunks come in order.
            start = text.find(chunk.text, cursor)
            cursor = start + len(chunk.text)
            out.append(
                TextNode(
                    id_=chunk.id,
                    text=chunk.text,
                    start_char_idx=start,
                    end_char_idx=cursor,
                    metadata={
                        "path": path,
                        "heading": chunk.heading,
                        "start_line": chunk.start_line,
                        "end_line": chunk.end_line,
                        "kind": chunk.kind,
                    },
                    # The document's own hidden keys (a reader's file dates) stay hidden.
                    excluded_llm_metadata_keys=[*document.excluded_llm_metadata_keys, *hidden],
                    excluded_embed_metadata_keys=[
                        *document.excluded_embed_metadata_keys,
                        *hidden,
                        "path",
                    ],
                    relationships={NodeRelationship.SOURCE: source},
                )
            )
        return out

    def _path(self, document: BaseNode) -> str:
        given = next((str(v) for key in PATH_KEYS if (v := document.metadata.get(key))), None)
        if given is None:
            raise UsageError(
                f"document {document.node_id} has no path: set metadata['file_path'] (its "
                "suffix picks Markdown or code chunking)"
            )
        if self.root is not None:
            for absolute in (os.path.abspath, os.path.realpath):
                try:
                    return Path(absolute(given)).relative_to(absolute(self.root)).as_posix()
                except ValueError:
                    continue
        return Path(given).as_posix()

    def _postprocess_parsed_nodes(
        self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]
    ) -> list[BaseNode]:
        # The base class re-derives character offsets with str.find, which lands on an
        # earlier copy of repeated text; ours are exact.
        spans = [
            (n.start_char_idx, n.end_char_idx) if isinstance(n, TextNode) else None for n in nodes
        ]
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node, span in zip(nodes, spans, strict=True):
            if isinstance(node, TextNode) and span is not None:
                node.start_char_idx, node.end_char_idx = span
        return nodes
