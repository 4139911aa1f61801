"""The MCP server: tools search, ask, list_sources and get_document over one KnowledgeBase."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from bekb import BekbError, KnowledgeBase
from bekb.contracts import answer_json, search_json, sources_json

HTTP_HOST = "127.0.0.1"

INSTRUCTIONS = """\
bekb is a knowledge base of backend-engineering skill documents (API design, microservices,
sagas, CQRS and event sourcing, databases, auth, messaging, caching, MCP servers), the material a
backend specialist agent cites. Use `search` to find passages and reason over them yourself,
`ask` for a ready answer with numbered citations, `list_sources` to see which documents exist,
and `get_document` to read one whole document by the `path` the other tools return.
"""

SEARCH = """\
Find the passages of the knowledge base most relevant to a query, best first.

Use this to locate where a topic is covered or to gather exact text to reason over and quote.
Pass `query` as natural language or keywords, e.g. "saga compensation" or "how to version a
REST API"; `k` is how many passages to return (1-100; default {k}).

Returns {{"query", "hits": [{{"path", "heading", "start_line", "end_line", "score", "text",
"label", ...}}]}}. `path` is relative to the workspace root and can be passed to
`get_document`; cite a hit by its `label` (path#heading (lines a-b)). `copies` lists other
files holding the same passage word for word (folded into this hit).
"""

ASK = """\
Answer a question from the knowledge base, in the backend specialist's voice, with numbered
citations [n] pointing at the passages used.

Use this when you want an answer rather than raw passages; use `search` when you will read and
combine the passages yourself. Pass one self-contained question, e.g. "How do I compensate a
failed step in a saga?".

Returns {"question", "mode", "answer", "citations": [{"n", "path", "heading", "start_line",
"end_line", "label"}], "hits": [...]}. `mode` is "llm" (written by Claude; only when the server
has an Anthropic API key), "extractive" (the best passages quoted, no API key) or "abstain"
(nothing relevant in the knowledge base: do not invent an answer from it).
"""

LIST_SOURCES = """\
List every indexed document: its path, title, one-line description and chunk count.

Use this to see what the knowledge base covers before searching, or to find the path of a
document to read with `get_document`. Takes no arguments.

Returns {"sources": [{"path", "title", "description", "chunks"}]}, sorted by path.
"""

GET_DOCUMENT = """\
Read the full text of one indexed document.

Pass `path` exactly as `search`, `ask` or `list_sources` returned it (relative to the workspace
root), e.g. "agents/plugins/backend-development/skills/saga-orchestration/SKILL.md". Paths that
are not indexed documents are refused.

Returns {"path", "text"}.
"""


def build_server(kb: KnowledgeBase) -> MCPServer:
    """An MCP server whose four read-only tools answer from `kb`."""
    server: MCPServer = MCPServer(
        # INFO logs a line per request (and per Chroma HTTP call in server mode): noise
        # that costs a third of a search's latency.
        "bekb",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level="WARNING",
    )
    guard = (
        threading.Lock()
    )  # sync tools run on worker threads; the KnowledgeBase is not shared-safe

    @contextmanager
    def call() -> Iterator[None]:
        with guard:
            try:
                yield
            except BekbError as exc:  # the one-line message, as the CLI prints it
                raise ToolError(str(exc)) from exc

    def search(query: str, k: int = kb.settings.k) -> dict[str, Any]:
        with call():
            return search_json(query, kb.search(query, k=k))

    def ask(question: str) -> dict[str, Any]:
        with call():
            return answer_json(kb.ask(question, use_llm=None))

    def list_sources() -> dict[str, Any]:
        with call():
            return sources_json(kb.sources())

    def get_document(path: str) -> dict[str, Any]:
        with call():
            return {"path": path, "text": kb.document(path)}

    tools: list[tuple[Callable[..., dict[str, Any]], str, str]] = [
        (search, "Search the knowledge base", SEARCH.format(k=kb.settings.k)),
        (ask, "Ask the backend specialist", ASK),
        (list_sources, "List indexed documents", LIST_SOURCES),
        (get_document, "Read an indexed document", GET_DOCUMENT),
    ]
    for fn, title, description in tools:
        server.add_tool(
            fn,
            title=title,
            description=description,
            annotations=ToolAnnotations(title=title, read_only_hint=True, open_world_hint=False),
        )
    return server


def serve(kb: KnowledgeBase, *, http_port: int | None = None) -> None:
    """Serve `kb` over stdio, or over streamable HTTP on 127.0.0.1:`http_port` when given."""
    server = build_server(kb)
    if http_port is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host=HTTP_HOST, port=http_port)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bekb")
    except PackageNotFoundError:
        return "0"
