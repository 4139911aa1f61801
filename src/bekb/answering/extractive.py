"""The keyless answer: the best passages quoted whole, under numbered citations."""

from __future__ import annotations

from collections.abc import Sequence

from bekb.domain import Citation, Hit

# Passages quoted by an extractive answer.
PASSAGES = 3
ENABLE_HINT = "Set ANTHROPIC_API_KEY to have Claude synthesise an answer from these passages."


def extractive_answer(hits: Sequence[Hit], *, persona: str) -> tuple[str, tuple[Citation, ...]]:
    """Quote the best passages (code blocks whole) with `[n]` markers; return text, citations."""
    chosen = list(hits[:PASSAGES])
    citations = tuple(
        Citation(
            n=n,
            path=hit.path,
            heading=hit.heading,
            start_line=hit.start_line,
            end_line=hit.end_line,
            quote=hit.text,
            stale=hit.stale,
        )
        for n, hit in enumerate(chosen, start=1)
    )
    who = f"{persona}'s" if persona else "the"
    parts = [f"From {who} knowledge base, the most relevant passages:"]
    for citation in citations:
        changed = "  (changed since indexing)" if citation.stale else ""
        parts.append(f"[{citation.n}] {citation.label}{changed}\n\n{citation.quote.strip()}")
    return "\n\n".join(parts) + "\n", citations


def abstention(question: str, hits: Sequence[Hit]) -> str:
    """What `ask` says when nothing relevant was found: the nearest topics it does cover."""
    topics: list[str] = []
    for hit in hits:
        topic = f"{hit.path}#{hit.heading}" if hit.heading else hit.path
        if topic not in topics:
            topics.append(topic)
    lines = [f"The knowledge base does not cover this question: {question.strip()}"]
    if topics:
        lines.append("Nearest topics it does cover:")
        lines.extend(f"- {topic}" for topic in topics[:5])
    return "\n".join(lines) + "\n"
