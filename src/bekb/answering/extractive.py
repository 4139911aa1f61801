"""The keyless answer: the best passages quoted whole, under numbered citations."""

from __future__ import annotations

from collections.abc import Sequence

from bekb.domain import Citation, Hit, heading_tail

# Passages quoted by an extractive answer.
PASSAGES = 3


def extractive_answer(
    hits: Sequence[Hit], *, persona: str, uncovered: Sequence[str] = ()
) -> tuple[str, tuple[Citation, ...]]:
    """Quote the best passages with `[n]` markers; return text, citations.

    `uncovered` (names in the question the knowledge base never mentions) is said in one
    line before the quotes.
    """
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
    if uncovered:
        parts.insert(0, not_covered(uncovered))
    for citation in citations:
        changed = "  (changed since indexing)" if citation.stale else ""
        heading = f"  {heading_tail(citation.heading)}" if citation.heading else ""
        parts.append(
            f"[{citation.n}] {citation.location}{heading}{changed}\n\n{citation.quote.strip()}"
        )
    return "\n\n".join(parts) + "\n", citations


def not_covered(terms: Sequence[str]) -> str:
    """The one line saying which names of a question the knowledge base never mentions."""
    return f"The knowledge base never mentions {_listed(terms)}."


def abstention(question: str, hits: Sequence[Hit], uncovered: Sequence[str] = ()) -> str:
    """What `ask` says when nothing relevant was found: what it lacks, and the nearest topics
    it does cover."""
    topics: dict[tuple[str, str], str] = {}  # (path, heading) → the first hit's place
    for hit in hits:
        topic = f"{hit.location}  {heading_tail(hit.heading)}" if hit.heading else hit.location
        topics.setdefault((hit.path, hit.heading), topic)
    lines = [f"The knowledge base does not cover this question: {question.strip()}"]
    if uncovered:
        lines.append(not_covered(uncovered))
    if topics:
        lines.append("Nearest topics it does cover:")
        lines.extend(f"- {topic}" for topic in list(topics.values())[:5])
    return "\n".join(lines) + "\n"


def _listed(terms: Sequence[str]) -> str:
    if len(terms) == 1:
        return terms[0]
    return ", ".join(terms[:-1]) + f" or {terms[-1]}"
