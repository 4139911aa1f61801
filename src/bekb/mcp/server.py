"""The MCP server: bekb's tools, its documents as resources and its personas as prompts."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import anyio
from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    GetPromptResult,
    Prompt,
    PromptArgument,
    PromptMessage,
    Resource,
    TextContent,
    ToolAnnotations,
)
from pydantic import ConfigDict, Field, ValidationError

from bekb import BekbError, KnowledgeBase
from bekb.corpus.documents import RESOURCE_SCHEME
from bekb.domain import Persona
from bekb.errors import AnswerError, IndexNotBuiltError, IndexStateError, UsageError
from bekb.inputs import MAX_K
from bekb.mcp.budget import Budget, compact
from bekb.mcp.builds import BackgroundBuild
from bekb.mcp.schemas import (
    AnswerResult,
    DocumentResult,
    ReindexResult,
    SearchResult,
    SourcesResult,
    StatusResult,
)
from bekb.mcp.tools import History, K, Line, Offset, PersonaName, Query, SourcesOffset, Tools

INSTRUCTIONS = """\
bekb is a knowledge base of backend-engineering skill documents (API design, microservices,
sagas, CQRS and event sourcing, databases, auth, messaging, caching, MCP servers), the material a
backend specialist agent cites. `search` finds passages (a snippet of the matched lines and a
`location`, path:start-end); `get_document` reads any location, label or path it returns;
`ask` gives a cited answer; `list_sources` shows what is covered; `status` and `reindex` keep
the index current. Results are kept short: a result cut to size says how to get the rest.
"""

SEARCH = """\
Find the passages most relevant to a query, best first.

Use this to locate where a topic is covered and gather text to reason over. Each hit has a
`location` (path:start-end) and a `snippet` of the lines that matched ("line: text"); pass the
location to `get_document` to read the passage whole, or set `full_text` for every hit's text.
`copies` lists other files holding the same passage word for word. Page with `offset`.
"""

ASK = """\
Answer a question from the knowledge base, in an agent's voice, with numbered citations [n].

Use this for a ready answer; use `search` to combine passages yourself. `mode` is "llm"
(written by Claude), "extractive" (the best passages quoted: the server has no Claude) or
"abstain" (the knowledge base does not cover it: do not invent an answer from it; `uncovered`
names what it never mentions). Each citation carries its `quote` and `location`.
"""

LIST_SOURCES = """\
List the indexed documents: path, title, one-line description and chunk count, by path.

Use this to see what the knowledge base covers; `total` says how many there are, and `offset`
pages through them when a result is cut.
"""

GET_DOCUMENT = """\
Read lines of an indexed document.

`path` takes what the other tools return: a path, a location ("path:12-30") or a label. The
range it names, or `start_line`/`end_line`, choose the lines (default: the whole document);
a long text is cut to size and `truncated.next_start_line` says where to go on.
"""

STATUS = """\
The index at a glance (built, files, chunks, last build, files changed since) and the
progress of the build `reindex` started (`build`: stage, done of total, error, report).
"""

REINDEX = """\
Bring the index up to date with the documents: an incremental build, in the background.

Returns at once (`started` is false when a build already runs); follow it with `status`
until `build.running` is false. Searches keep answering from the previous index meanwhile.
"""

PROMPT = """\
You are {name}: {description}

{body}

Answer from the bekb knowledge base, not from memory alone: call `search` to find passages,
`get_document` with a hit's `location` to read one whole, or `ask` with persona="{name}" for a
cited answer. Cite what you use by its location (path:start-end). When bekb does not cover the
question, say so instead of guessing.
"""

# The CLI's advice, in the terms an agent has: its tools.
_CLI_ADVICE = re.compile(r"run `bekb index`(?: first| again)?")


class StrictTool(Tool):
    """A tool that refuses unknown arguments and reports bad ones in one plain line.

    The SDK ignores unknown arguments (an agent's typo goes unnoticed) and reports bad
    ones with pydantic's full text and URL; neither is a setting, so the argument model
    is subclassed here.
    """

    @classmethod
    def strict(cls, fn: Callable[..., Any], **kwargs: Any) -> StrictTool:
        """The tool of `fn` (as `Tool.from_function`), its arguments closed."""
        tool = cls.from_function(fn, **kwargs)
        base = tool.fn_metadata.arg_model
        closed: type[ArgModelBase] = type(
            base.__name__, (base,), {"model_config": ConfigDict(extra="forbid")}
        )
        tool.fn_metadata.arg_model = closed
        tool.parameters = closed.model_json_schema(by_alias=True)
        assert isinstance(tool, StrictTool)
        return tool

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        """Run the tool; arguments that do not fit its schema give an error result."""
        try:
            self.fn_metadata.arg_model.model_validate(self.fn_metadata.pre_parse_json(arguments))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False, include_input=False):
                where = ".".join(str(p) for p in error["loc"]) or "arguments"
                unknown = error["type"] == "extra_forbidden"
                problems.append(
                    f"unknown argument {where!r}" if unknown else f"{where}: {error['msg']}"
                )
            return _error(
                f"invalid arguments for {self.name}: {'; '.join(problems)} "
                "(see the tool's input schema)"
            )
        return await super().run(arguments, context, convert_result=convert_result)


class BekbServer(MCPServer):
    """The MCP server over one knowledge base: tools, resources (`bekb://<path>`), prompts."""

    def __init__(
        self,
        kb: KnowledgeBase,
        tools: Sequence[Tool],
        builds: BackgroundBuild,
        budget: Budget,
    ) -> None:
        super().__init__(
            "bekb",
            instructions=INSTRUCTIONS,
            version=_version(),
            # INFO logs a line per request (and per Chroma HTTP call in server mode).
            log_level="WARNING",
            tools=list(tools),
        )
        self.kb = kb
        self.builds = builds  # the reindex tool's background build

        @self.resource(
            RESOURCE_SCHEME + "{+path}",
            name="document",
            title="An indexed document",
            description="The text of an indexed document, by its path under the root (a long "
            "one is cut to the tools' token budget, with a last line saying how to read on).",
        )
        def read_document(path: str) -> str:
            try:
                text = kb.document(path)
            except BekbError as exc:
                raise ResourceNotFoundError(agent_message(exc)) from None
            how = f"call get_document with path {path!r} and start_line=next_start_line"
            fitted = budget.fit_text({"text": text}, "text", first_line=1, how=how)
            cut = fitted.get("truncated")
            if cut is None:
                return text
            kept = fitted["text"] if fitted["text"].endswith("\n") else fitted["text"] + "\n"
            return f"{kept}[{cut['note']}; next_start_line={cut['next_start_line']}]\n"

    async def list_resources(self) -> list[Resource]:
        """Every indexed document (none before the first build), listed afresh each time."""
        if not await anyio.to_thread.run_sync(self.kb.is_built):
            return []
        sources = await anyio.to_thread.run_sync(self.kb.sources)
        return [
            Resource(
                uri=f"{RESOURCE_SCHEME}{s.path}",
                name=s.path,
                title=s.title,
                description=s.description or None,
                mime_type="text/markdown" if s.path.endswith(".md") else "text/plain",
            )
            for s in sources
        ]

    async def list_prompts(self) -> list[Prompt]:
        """One prompt per persona: answer as that agent, through bekb's tools."""
        return [
            Prompt(
                name=persona.name,
                title=f"Answer as {persona.name}",
                description=persona.description or None,
                arguments=[
                    PromptArgument(name="question", description="What to ask", required=False)
                ],
            )
            for persona in await self._personas()
        ]

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> GetPromptResult:
        """The persona `name` as a prompt, with the question after it when given."""
        persona = next((p for p in await self._personas() if p.name == name), None)
        if persona is None:
            raise MCPError(code=INVALID_PARAMS, message=f"no prompt {name!r}: see prompts/list")
        unknown = sorted(set(arguments or {}) - {"question"})
        if unknown:
            raise MCPError(code=INVALID_PARAMS, message=f"prompt {name}: unknown {unknown}")
        text = PROMPT.format(name=persona.name, description=persona.description, body=persona.body)
        question = (arguments or {}).get("question")
        if question:
            text += f"\nQuestion: {question}\n"
        return GetPromptResult(
            description=persona.description or None,
            messages=[PromptMessage(role="user", content=TextContent(type="text", text=text))],
        )

    async def _personas(self) -> list[Persona]:
        """The personas, one per name (the first by path when two files share one)."""
        found: dict[str, Persona] = {}
        for persona in await anyio.to_thread.run_sync(self.kb.personas):
            found.setdefault(persona.name, persona)
        return list(found.values())


def build_server(kb: KnowledgeBase) -> BekbServer:
    """The MCP server answering from `kb`; its tools run in parallel, in worker threads.

    Threads, not worker processes: on 2 CPUs, 8 searches in flight over stdio gained
    1.62-1.73x over one at a time in threads and 1.49-1.57x in processes, whose pickling
    and pipes cost more than the GIL does (measured side by side, scripts/bench_serve.py).
    """
    budget = Budget(kb.settings.mcp_max_tokens, kb.count_tokens)
    tools = Tools(kb, budget)
    builds = BackgroundBuild(kb)

    def search(
        query: Query,
        k: K = kb.settings.k,
        offset: Offset = 0,
        full_text: Annotated[bool, Field(description="Include each hit's whole text.")] = False,
    ) -> Annotated[CallToolResult, SearchResult]:
        return _respond(lambda: tools.search(query, k, offset, full_text))

    def ask(
        question: Query,
        k: Annotated[
            int | None, Field(ge=1, le=MAX_K, description="Passages to answer from.")
        ] = None,
        persona: PersonaName = None,
        include_hits: Annotated[
            bool, Field(description="Also return the retrieved passages (as search does).")
        ] = False,
        history: History = [],  # noqa: B006  (pydantic copies it; the schema shows [])
    ) -> Annotated[CallToolResult, AnswerResult]:
        return _respond(lambda: tools.ask(question, k, persona, include_hits, history))

    def list_sources(offset: SourcesOffset = 0) -> Annotated[CallToolResult, SourcesResult]:
        return _respond(lambda: tools.list_sources(offset))

    def get_document(
        path: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4000,
                description="A path, location (path:12-30) or label the other tools returned.",
            ),
        ],
        start_line: Line = None,
        end_line: Line = None,
    ) -> Annotated[CallToolResult, DocumentResult]:
        return _respond(lambda: tools.get_document(path, start_line, end_line))

    def status() -> Annotated[CallToolResult, StatusResult]:
        return _respond(lambda: tools.status(builds.state()))

    def reindex() -> Annotated[CallToolResult, ReindexResult]:
        def start() -> ReindexResult:
            started, state = builds.start()
            return ReindexResult(started=started, build=state)

        return _respond(start)

    described: list[tuple[Callable[..., CallToolResult], str, str, bool]] = [
        (search, "Search the knowledge base", SEARCH, True),
        (ask, "Ask the backend specialist", ASK, True),
        (list_sources, "List indexed documents", LIST_SOURCES, True),
        (get_document, "Read an indexed document", GET_DOCUMENT, True),
        (status, "Index status", STATUS, True),
        (reindex, "Update the index", REINDEX, False),
    ]
    return BekbServer(
        kb,
        [
            StrictTool.strict(
                fn,
                title=title,
                description=text,
                annotations=ToolAnnotations(
                    title=title,
                    read_only_hint=read_only,
                    idempotent_hint=True,
                    open_world_hint=False,
                ),
            )
            for fn, title, text, read_only in described
        ],
        builds,
        budget,
    )


def agent_message(exc: BekbError) -> str:
    """`exc` as an agent reads it: one line, and what it can do next with its tools."""
    message = _CLI_ADVICE.sub("call `reindex`", str(exc))
    if isinstance(exc, IndexNotBuiltError):
        return f"{message}, then `status` until the build is done"
    if isinstance(exc, IndexStateError):  # locked by a build, or damaged
        return f"{message} (`status` shows the index state)"
    if isinstance(exc, AnswerError):
        return f"{message}: call `search` for the passages instead"
    if isinstance(exc, UsageError) and "indexed file" in message:
        return f"{message}: pass a path or location that search, ask or list_sources returned"
    return message


def _respond(call: Callable[[], Any]) -> CallToolResult:
    """`call`'s result as compact text and structured content; a BekbError as an error
    result (the SDK's own would start "Error executing tool")."""
    try:
        data = call()
    except BekbError as exc:
        return _error(agent_message(exc))
    return CallToolResult(
        content=[TextContent(type="text", text=compact(data))], structured_content=data
    )


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bekb")
    except PackageNotFoundError:
        return "0"
