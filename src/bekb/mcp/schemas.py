"""The MCP tools' result shapes, published as their output schemas.

They are the CLI's `--json` shapes (bekb.contracts) made lean for agents, which pay for every
byte: a search hit carries a snippet of its matched lines instead of its whole text (unless
asked), an answer leaves its hits out (unless asked), and every list or text that a budget
cut says so in `truncated`.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict


class Truncated(TypedDict):
    """Why a result is shorter than asked, and how to get the rest."""

    note: str
    next_offset: NotRequired[int]  # search, list_sources: pass as `offset`
    next_start_line: NotRequired[int]  # get_document: pass as `start_line`


class Place(TypedDict):
    """Where else a passage appears word for word."""

    path: str
    location: str


class SearchHit(TypedDict):
    """One passage: where it is, what it is about, and the lines that matched."""

    path: str
    heading: str
    start_line: int
    end_line: int
    location: str  # path:start-end, what get_document takes
    label: str
    score: float
    kind: str
    stale: bool  # the file changed since indexing
    snippet: str  # the matched lines, each as "number: text"
    copies: list[Place]
    text: NotRequired[str]  # the whole passage, with full_text


class SearchResult(TypedDict):
    query: str
    hits: list[SearchHit]
    offset: int
    truncated: NotRequired[Truncated]


class CitationResult(TypedDict):
    n: int
    path: str
    heading: str
    start_line: int
    end_line: int
    location: str
    label: str
    quote: str  # the text cited (Claude's quote, or the quoted passage)
    stale: bool


class PriorTurn(TypedDict):
    """An earlier exchange an agent passes to `ask`."""

    question: str
    answer: str


class UsageResult(TypedDict):
    """Tokens the Anthropic API counted for an answer."""

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


class AnswerResult(TypedDict):
    question: str
    mode: Literal["llm", "extractive", "abstain"]
    answer: str
    persona: str
    notice: str
    uncovered: list[str]  # names in the question the knowledge base never mentions
    citations: list[CitationResult]
    rewrites: list[str]  # the queries Claude wrote for the question (query expansion)
    searches: list[str]  # the follow-up searches Claude made
    usage: UsageResult | None  # null: no API call was made
    hits: NotRequired[list[SearchHit]]  # with include_hits
    truncated: NotRequired[Truncated]


class SourceResult(TypedDict):
    path: str
    title: str
    description: str
    chunks: int


class SourcesResult(TypedDict):
    sources: list[SourceResult]
    offset: int
    total: int
    truncated: NotRequired[Truncated]


class DocumentResult(TypedDict):
    path: str
    start_line: int
    end_line: int
    total_lines: int
    location: str
    text: str
    truncated: NotRequired[Truncated]


class BuildState(TypedDict):
    """The background build `reindex` started (the latest one)."""

    running: bool
    stage: str  # "" before any build; scan, chunk, embed, write, adapt, finish, wait
    done: int
    total: int
    detail: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    report: dict[str, object] | None  # as `bekb index --json`, once done


class StaleFile(TypedDict):
    path: str
    state: str


class UnusableAgent(TypedDict):
    path: str
    reason: str


class StatusResult(TypedDict):
    built: bool
    files: int
    chunks: int
    last_build: str | None
    embed_model: str
    stale: list[StaleFile]
    store_problem: str | None
    # Configured agent files that cannot be read: reindex fails until they are restored.
    unusable_agents: list[UnusableAgent]
    build: BuildState


class ReindexResult(TypedDict):
    started: bool  # False: a build was already running
    build: BuildState
