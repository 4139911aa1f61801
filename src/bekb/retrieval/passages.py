"""Passages: what a reader is shown for each hit, assembled from the ranked chunks.

The rule (docs/architecture.md, "Passages"):
- A passage is one or more consecutive chunks of one file, anchored on its best-ranked chunk;
  its score is the anchor's.
- It is never a bare heading, a tiny fragment or frontmatter alone: such an anchor takes in
  the chunks after it until the passage says something (frontmatter: the opening of the
  document, where its overview is).
- A code chunk takes in the prose just before it in its section, the text that introduces it.
- A later chunk next to a passage, in the same section, joins it instead of taking a slot of
  its own, while the passage stays within MAX_LINES and gains no second code block; a chunk
  already inside an earlier passage adds nothing, and a later passage that would overlap an
  earlier one joins it (or keeps only its new part, unless that says nothing on its own).
- Passages are assembled from a candidate pool of fixed size, before anything is cut to `k`:
  the first n hits of `k = n` are the first n of any larger `k`.
A code block longer than the chunk window was cut across chunks at indexing time; a passage
shows the part that ranked, not the whole block (which could run to hundreds of lines).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from bekb.chunking.markdown import fence_after, shared_heading
from bekb.domain import Chunk, Hit, HitExplain

# A passage with fewer lines of text than this (headings aside) takes in the chunk after it.
MIN_TEXT_LINES = 4
# A passage grows (by completion or by merging) only while it stays within this many lines.
MAX_LINES = 50
# Code blocks a passage may hold and still take in a neighbour.
MAX_CODE_BLOCKS = 1

# neighbour(chunk, step): the chunk `step` places after `chunk` in its file (before, when
# negative), or None at either end of the file.
Neighbour = Callable[[Chunk, int], Chunk | None]


@dataclass
class _Passage:
    chunks: list[Chunk]
    explain: HitExplain

    @property
    def path(self) -> str:
        return self.chunks[0].path

    def covers(self, chunk: Chunk) -> bool:
        return (
            chunk.path == self.path
            and self.chunks[0].ordinal <= chunk.ordinal <= self.chunks[-1].ordinal
        )

    def beside(self, chunk: Chunk) -> bool:
        """Whether `chunk` is right before or after this passage, in the same section."""
        first, last = self.chunks[0], self.chunks[-1]
        return chunk.path == self.path and (
            (chunk.ordinal == first.ordinal - 1 and chunk.heading == first.heading)
            or (chunk.ordinal == last.ordinal + 1 and chunk.heading == last.heading)
        )


def assemble(candidates: Sequence[tuple[Chunk, HitExplain]], neighbour: Neighbour) -> list[Hit]:
    """Hits from ranked chunks (best first), by the rule in this module's docstring."""
    passages: list[_Passage] = []
    by_path: dict[str, list[_Passage]] = {}  # only a file's own passages can take a chunk in
    for chunk, explain in candidates:
        mine = by_path.setdefault(chunk.path, [])
        if any(p.covers(chunk) for p in mine):
            continue
        home = next((p for p in mine if p.beside(chunk)), None)
        if home is not None and _grows_readably(home.chunks, [chunk]):
            home.chunks = sorted([*home.chunks, chunk], key=_ordinal)
            continue
        span = _completed(chunk, neighbour)
        # A span that reaches into an earlier passage (a frontmatter anchor completed into
        # the section that already ranked) is one passage with it when that stays readable,
        # and otherwise keeps only what is new, if that says anything on its own.
        overlapping = next((p for p in mine if any(p.covers(c) for c in span)), None)
        if overlapping is not None:
            new = [c for c in span if not overlapping.covers(c)]
            if _grows_readably(overlapping.chunks, new):
                overlapping.chunks = sorted([*overlapping.chunks, *new], key=_ordinal)
                continue
            span = [c for c in span if not any(p.covers(c) for p in mine)]
            if _text_lines(span) == 0:
                continue
        passage = _Passage(span, explain)
        passages.append(passage)
        mine.append(passage)
    return [_hit(p) for p in passages]


def _completed(anchor: Chunk, neighbour: Neighbour) -> list[Chunk]:
    """The anchor with what it needs to be read: the prose introducing a code chunk, and
    what a heading, a fragment or frontmatter introduces."""
    span = [anchor]
    before = neighbour(anchor, -1) if anchor.kind == "code" else None
    if (
        before is not None
        and before.kind == "prose"
        and before.heading == anchor.heading
        and _readable([before, anchor])
    ):
        span.insert(0, before)
    while _text_lines(span) < MIN_TEXT_LINES or span[-1].kind == "frontmatter":
        after = neighbour(span[-1], 1)
        if after is None:
            break
        if _text_lines(span) > 0 and _lines([*span, after]) > MAX_LINES:
            break  # it says something already: do not grow it past readable
        span.append(after)
    return span


def _readable(chunks: Sequence[Chunk]) -> bool:
    return _lines(chunks) <= MAX_LINES and _code_blocks(chunks) <= MAX_CODE_BLOCKS


def _grows_readably(passage: Sequence[Chunk], more: Sequence[Chunk]) -> bool:
    """Whether `passage` may take in `more` (next to it or overlapping it): it stays within
    MAX_LINES and gains no code block past MAX_CODE_BLOCKS (one chunk may hold more)."""
    grown = sorted({c.ordinal: c for c in [*passage, *more]}.values(), key=_ordinal)
    blocks = _code_blocks(grown)
    return _lines(grown) <= MAX_LINES and (
        blocks <= MAX_CODE_BLOCKS or blocks <= _code_blocks(passage)
    )


def _ordinal(chunk: Chunk) -> int:
    return chunk.ordinal


def _lines(chunks: Sequence[Chunk]) -> int:
    return chunks[-1].end_line - chunks[0].start_line + 1


def _text_lines(chunks: Sequence[Chunk]) -> int:
    """Lines that say something: not blank, not a heading, not frontmatter."""
    return sum(_says(c.text) for c in chunks if c.kind != "frontmatter")


@cache
def _says(text: str) -> int:
    return sum(
        1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def _code_blocks(chunks: Sequence[Chunk]) -> int:
    """Fenced code blocks opened in `chunks` (read as one text)."""
    fence: str | None = None
    opened = 0
    for chunk in chunks:
        count, fence = _fences(chunk.text, fence)
        opened += count
    return opened


@cache
def _fences(text: str, fence: str | None) -> tuple[int, str | None]:
    """Code blocks `text` opens, given the fence open where it starts, and the one open at its
    end."""
    opened = 0
    for line in text.split("\n"):
        was_open = fence is not None
        fence = fence_after(line, fence)
        opened += not was_open and fence is not None
    return opened, fence


def _hit(passage: _Passage) -> Hit:
    chunks = passage.chunks
    anchor = next((c for c in chunks if c.kind != "frontmatter"), chunks[0])
    return Hit(
        path=anchor.path,
        heading=shared_heading([c.label or c.heading for c in chunks if c.kind != "frontmatter"]),
        start_line=chunks[0].start_line,
        end_line=chunks[-1].end_line,
        text=_joined(chunks),
        score=round(passage.explain.fused, 6),
        kind=anchor.kind if len(chunks) == 1 else "prose",
        chunk_ids=tuple(c.id for c in chunks),
        explain=passage.explain,
    )


def _joined(chunks: Sequence[Chunk]) -> str:
    """The chunks' texts as one, with the blank lines between them that chunking left out:
    line i of a passage is line start_line + i of its file."""
    parts = [chunks[0].text]
    for before, chunk in itertools.pairwise(chunks):
        gap = chunk.start_line - before.end_line - 1
        parts.append("\n" * max(gap, 0) + chunk.text)
    return "".join(parts)
