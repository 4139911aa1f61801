"""The keyless answer: the best passages quoted whole, under numbered citations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bekb.chunking.markdown import fence_after
from bekb.domain import Chunk, Citation, Hit

# Passages quoted by an extractive answer.
PASSAGES = 3


def whole_code_blocks(hit: Hit, file_chunks: Sequence[Chunk]) -> Hit:
    """`hit` widened over neighbouring chunks of its file until no code block is cut.

    A code block longer than the model window is split across chunks at indexing time; a
    quote must still show it from its opening fence to its closing one.
    """
    ordered = sorted(file_chunks, key=lambda c: c.ordinal)
    ids = [c.id for c in ordered]
    if not hit.chunk_ids or hit.chunk_ids[0] not in ids or hit.chunk_ids[-1] not in ids:
        return hit
    first, last = ids.index(hit.chunk_ids[0]), ids.index(hit.chunk_ids[-1])
    # open_at[i]: the fence still open where chunk i starts (None: outside any code block)
    open_at: list[str | None] = [None]
    for chunk in ordered:
        open_at.append(fence_after(chunk.text, open_at[-1]))
    while open_at[first] is not None and first > 0:  # the passage starts inside a code block
        first -= 1
    while open_at[last + 1] is not None and last < len(ordered) - 1:  # ... or ends inside one
        last += 1
    span = ordered[first : last + 1]
    if len(span) == len(hit.chunk_ids):
        return hit
    return replace(
        hit,
        text="".join(c.text for c in span),
        start_line=span[0].start_line,
        end_line=span[-1].end_line,
        chunk_ids=tuple(c.id for c in span),
    )


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
