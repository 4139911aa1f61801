"""The MCP tools' bodies: each turns a KnowledgeBase call into a lean, budgeted result.

They are plain functions of typed arguments (their annotations are the tools' input
schemas) returning the TypedDicts of `schemas` (the output schemas); `server` registers
them and turns a BekbError into an error result the agent can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, cast

from pydantic import Field

from bekb import KnowledgeBase
from bekb.contracts import answer_json, excerpt_json, sources_json, status_json
from bekb.domain import Hit, Turn
from bekb.errors import UsageError
from bekb.inputs import MAX_K, MAX_QUESTION_CHARS
from bekb.mcp.budget import Budget
from bekb.mcp.schemas import (
    AnswerResult,
    BuildState,
    DocumentResult,
    PriorTurn,
    SearchHit,
    SearchResult,
    SourcesResult,
    StatusResult,
)
from bekb.retrieval.snippets import snippet_lines

EXTRACTIVE_NOTICE = (
    "extractive: the best passages quoted, not a written answer (this server answers "
    "without Claude); read them, or the cited ranges with get_document"
)

Query = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description='Natural language or keywords, e.g. "saga compensation".',
    ),
]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"How many passages (1-{MAX_K}).")]
Offset = Annotated[
    int, Field(ge=0, le=MAX_K - 1, description="Skip this many results (paging; see truncated).")
]
SourcesOffset = Annotated[
    int, Field(ge=0, description="Skip this many documents (paging; see truncated).")
]
PersonaName = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Answer as this agent (a name from the server's prompts, e.g. "
        '"backend-specialist"); default: the configured one.',
    ),
]
# Earlier turns an agent may pass to `ask`: enough for a follow-up to be understood.
MAX_TURNS = 10
History = Annotated[
    list[PriorTurn],
    Field(
        max_length=MAX_TURNS,
        description="Earlier turns of this conversation, oldest first, so that a follow-up "
        '("and how do I test it?") is understood.',
    ),
]
Line = Annotated[int | None, Field(ge=1, description="First or last line (1-based, inclusive).")]


def search_hit(hit: Hit, *, full_text: bool) -> SearchHit:
    """A hit as `search` returns it: place, heading, matched lines, and the text if asked."""
    lean = SearchHit(
        path=hit.path,
        heading=hit.heading,
        start_line=hit.start_line,
        end_line=hit.end_line,
        location=hit.location,
        label=hit.label,
        score=round(hit.score, 4),
        kind=hit.kind,
        stale=hit.stale,
        snippet="\n".join(f"{n}: {line}" for n, line in snippet_lines(hit)),
        copies=[{"path": c.path, "location": c.location} for c in hit.copies],
    )
    if full_text:
        lean["text"] = hit.text
    return lean


class Tools:
    """The read tools over one knowledge base, each result within `budget`."""

    def __init__(self, kb: KnowledgeBase, budget: Budget) -> None:
        self.kb = kb
        self.budget = budget

    def search(self, query: str, k: int, offset: int = 0, full_text: bool = False) -> SearchResult:
        """Hits offset+1 .. offset+k, cut to the budget."""
        if offset + k > MAX_K:
            raise UsageError(f"offset + k is at most {MAX_K} (got {offset} + {k})")
        hits = self.kb.search(query, k=offset + k)[offset:]
        data = SearchResult(
            query=query,
            hits=[search_hit(h, full_text=full_text) for h in hits],
            offset=offset,
        )
        return cast(
            SearchResult, self.budget.fit_items(dict(data), "hits", offset=offset, what="hits")
        )

    def ask(
        self,
        question: str,
        k: int | None,
        persona: str | None,
        include_hits: bool,
        history: Sequence[PriorTurn] = (),
    ) -> AnswerResult:
        """The answer with its citations (and the hits, if asked), cut to the budget;
        `history` is the conversation so far, oldest first."""
        turns = [Turn(t["question"], t["answer"]) for t in history]
        answer = self.kb.ask(question, k=k, persona=persona, use_llm=None, history=turns)
        full = answer_json(answer)
        mode = answer.mode
        notice = EXTRACTIVE_NOTICE if mode == "extractive" and not answer.notice else answer.notice
        notice = "; ".join(n for n in (notice, answer.persona_notice) if n)
        data: dict[str, Any] = {
            **{key: full[key] for key in ("question", "answer", "persona", "uncovered")},
            "mode": mode,
            "notice": notice,
            "citations": full["citations"],
            **{key: full[key] for key in ("rewrites", "searches", "usage")},
        }
        how = "read the cited passages with get_document(location)"
        data = self.budget.fit_text(data, "answer", first_line=None, how=how)
        if include_hits:
            data["hits"] = [search_hit(h, full_text=False) for h in answer.hits]
            how = "call search with the question for them"
            data = self.budget.fit_items(data, "hits", what="hits", how=how)
        return cast(AnswerResult, data)

    def list_sources(self, offset: int) -> SourcesResult:
        """Indexed documents from `offset` on, cut to the budget."""
        sources = sources_json(self.kb.sources())["sources"]
        data = {"sources": sources[offset:], "offset": offset, "total": len(sources)}
        fitted = self.budget.fit_items(data, "sources", offset=offset, what="sources")
        return cast(SourcesResult, fitted)

    def get_document(
        self, path: str, start_line: int | None, end_line: int | None
    ) -> DocumentResult:
        """Lines of an indexed document, cut to the budget (the note says where to go on)."""
        excerpt = self.kb.show(path, start_line=start_line, end_line=end_line, indexed_only=True)
        fitted = self.budget.fit_text(
            excerpt_json(excerpt),
            "text",
            first_line=excerpt.start_line,
            how="call get_document with start_line=next_start_line for the rest",
        )
        if "truncated" in fitted:
            fitted["end_line"] = fitted["truncated"]["next_start_line"] - 1
            fitted["location"] = f"{excerpt.path}:{excerpt.start_line}-{fitted['end_line']}"
        return cast(DocumentResult, fitted)

    def status(self, build: BuildState) -> StatusResult:
        """The index state, and `build`: the background build's progress."""
        full = status_json(self.kb.status())
        data = {
            **{key: full[key] for key in ("built", "files", "chunks", "last_build")},
            "embed_model": full["embed_model"],
            "stale": full["stale"],
            "store_problem": full["store_problem"],
            "unusable_agents": full["unusable_agents"],
            "build": build,
        }
        how = "call reindex to bring them all up to date"
        return cast(StatusResult, self.budget.fit_items(data, "stale", what="stale files", how=how))
