"""Pack line blocks into chunks that fit the model window, splitting only what is too big."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class TokenCounter(Protocol):
    """Counts tokens the way the embedding model does (special tokens excluded)."""

    @property
    def max_tokens(self) -> int:
        """Largest input the model reads, special tokens included."""
        ...

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, without the model's special tokens."""
        ...

    def split(self, text: str, limit: int) -> list[str]:
        """Cut `text` into consecutive pieces of at most `limit` tokens each."""
        ...


# [CLS] and [SEP] (or their equivalents) take two positions of the window.
SPECIAL_TOKENS = 2


@dataclass(frozen=True)
class Piece:
    """A run of text from one file: lines `start_line`..`end_line` (1-based, inclusive)."""

    text: str
    start_line: int
    end_line: int
    tokens: int


def split_lines(text: str) -> list[str]:
    """Lines with their `\\n` kept; only `\\n` ends a line (so line numbers match editors)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def pieces_of_lines(lines: Sequence[str], counts: Sequence[int], first_line: int) -> list[Piece]:
    """One piece per line, numbered from `first_line`."""
    return [
        Piece(line, first_line + i, first_line + i, count)
        for i, (line, count) in enumerate(zip(lines, counts, strict=True))
    ]


def join(pieces: Sequence[Piece]) -> Piece:
    """Consecutive pieces as one."""
    return Piece(
        "".join(p.text for p in pieces),
        pieces[0].start_line,
        pieces[-1].end_line,
        sum(p.tokens for p in pieces),
    )


def pack(blocks: Sequence[Sequence[Piece]], limit: int, counter: TokenCounter) -> list[Piece]:
    """Greedily pack blocks (each a run of line pieces) into pieces of at most `limit` tokens.

    A block is kept whole when it fits; a block alone over the limit is cut between lines,
    and a line alone over the limit is cut between tokens.
    """
    out: list[Piece] = []
    current: list[Piece] = []
    used = 0
    for block in blocks:
        size = sum(p.tokens for p in block)
        if current and used + size > limit:
            out.append(join(current))
            current, used = [], 0
        if size <= limit:
            current.extend(block)
            used += size
            continue
        for line in block:  # an oversized block: fill line by line
            if current and used + line.tokens > limit:
                out.append(join(current))
                current, used = [], 0
            if line.tokens <= limit:
                current.append(line)
                used += line.tokens
            else:
                out.extend(_cut_line(line, limit, counter))
        if current:
            out.append(join(current))
            current, used = [], 0
    if current:
        out.append(join(current))
    return out


def _cut_line(line: Piece, limit: int, counter: TokenCounter) -> list[Piece]:
    parts = counter.split(line.text, limit)
    counts = counter.count(parts)
    return [
        Piece(part, line.start_line, line.end_line, count)
        for part, count in zip(parts, counts, strict=True)
    ]
