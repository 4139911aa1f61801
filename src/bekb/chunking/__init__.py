"""Chunking: turn one source file into chunks that fit the embedding model's window."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath

from bekb.chunking.blocks import (
    SPECIAL_TOKENS,
    Piece,
    TokenCounter,
    join,
    pack,
    pieces_of_lines,
    split_lines,
)
from bekb.chunking.markdown import first_heading, sections
from bekb.chunking.syntax import GRAMMARS, code_blocks
from bekb.domain import Chunk, ChunkKind

# Bump when chunk boundaries or context headers change: it forces a full rebuild.
CHUNKER_VERSION = "3"
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdx"})
# A context header never takes more than this share of the window.
HEADER_SHARE = 0.25
# A section this small (a bare heading) is merged into the next one.
MIN_SECTION_TOKENS = 24
# A chunk this small (a horizontal rule, a closing line) is folded into a neighbour.
MIN_CHUNK_TOKENS = 12

__all__ = ["CHUNKER_VERSION", "TokenCounter", "chunk_file"]


def chunk_file(
    path: str, text: str, file_sha256: str, counter: TokenCounter, *, max_tokens: int = 0
) -> list[Chunk]:
    """Chunks of one file, in order; their texts concatenate back to the file's text.

    Whitespace-only stretches between chunks are the only text not kept. `max_tokens` caps
    the chunk size (context header included) below the model's own window.
    """
    window = min(counter.max_tokens, max_tokens) if max_tokens else counter.max_tokens
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        runs = _markdown_runs(path, text, counter)
    elif suffix in GRAMMARS:
        runs = _code_runs(path, suffix, text, counter)
    else:
        runs = _plain_runs(path, suffix, text, counter)
    placed = _merge_tiny(
        [(run, piece) for run in runs for piece in _fit(run, window, counter)], window, counter
    )
    chunks: list[Chunk] = []
    seen: Counter[str] = Counter()
    for run, piece in placed:
        if not piece.text.strip():
            continue
        kind = run.kind if run.kind != "prose" else _kind_of(piece.text)
        body = f"{run.context}\n{piece.text}"
        seen[body] += 1
        digest = hashlib.sha256(f"{path}\0{body}\0{seen[body]}".encode()).hexdigest()
        chunks.append(
            Chunk(
                id=digest[:32],
                path=path,
                ordinal=len(chunks),
                heading=run.heading,
                start_line=piece.start_line,
                end_line=piece.end_line,
                kind=kind,
                text=piece.text,
                context=run.context,
                file_sha256=file_sha256,
            )
        )
    return chunks


def _merge_tiny(
    placed: list[tuple[_Run, Piece]], window: int, counter: TokenCounter
) -> list[tuple[_Run, Piece]]:
    """Fold pieces too small to stand alone (a `---` rule, a stray line) into a neighbour."""
    out = list(placed)
    i = 0
    while i < len(out):
        _run, piece = out[i]
        if piece.tokens >= MIN_CHUNK_TOKENS or len(out) == 1:
            i += 1
            continue
        merged = False
        for j in (i - 1, i + 1):
            if not 0 <= j < len(out):
                continue
            host_run, host = out[j]
            pair = [host, piece] if j < i else [piece, host]
            joined = join(pair)
            if counter.count([f"{host_run.context}\n{joined.text}"])[0] + SPECIAL_TOKENS <= window:
                out[j] = (host_run, joined)
                del out[i]
                merged = True
                break
        if not merged:
            i += 1
    return out


class _Run:
    """Blocks that share one heading and context header (one section, one definition)."""

    def __init__(
        self, blocks: list[list[Piece]], heading: str, context: str, kind: ChunkKind = "prose"
    ) -> None:
        self.blocks = blocks
        self.heading = heading
        self.context = context
        self.kind = kind


def _markdown_runs(path: str, text: str, counter: TokenCounter) -> list[_Run]:
    front, parts = sections(text, counter)
    title = (front.name if front else "") or first_heading(parts) or PurePosixPath(path).stem
    description = front.description if front else ""
    runs: list[_Run] = []
    carried: list[list[Piece]] = []
    for i, section in enumerate(parts):
        blocks = carried + section.blocks
        size = sum(p.tokens for block in blocks for p in block)
        is_last = i == len(parts) - 1
        if not section.is_frontmatter and size < MIN_SECTION_TOKENS and not is_last:
            carried = blocks
            continue
        carried = []
        heading = " > ".join(section.trail)
        if section.is_frontmatter:
            runs.append(_Run(blocks, "", _header(title, "", ""), "frontmatter"))
        else:
            runs.append(_Run(blocks, heading, _header(title, description, heading)))
    return runs


def _code_runs(path: str, suffix: str, text: str, counter: TokenCounter) -> list[_Run]:
    pieces = _pieces(text, counter)
    blocks = code_blocks(suffix, text, pieces)
    if blocks is None:
        return _plain_runs(path, suffix, text, counter, kind="code")
    return [
        _Run([block.pieces], block.label, _header(path, "", block.label), "code")
        for block in blocks
    ]


def _plain_runs(
    path: str, suffix: str, text: str, counter: TokenCounter, kind: ChunkKind | None = None
) -> list[_Run]:
    pieces = _pieces(text, counter)
    chosen: ChunkKind = kind or (
        "data" if suffix in {".json", ".yaml", ".yml", ".toml"} else "prose"
    )
    if chosen == "data":
        return [_Run([pieces], "", _header(path, "", ""), "data")]  # whole when it fits
    blocks: list[list[Piece]] = [[]]
    for piece in pieces:
        blocks[-1].append(piece)
        if not piece.text.strip():
            blocks.append([])
    return [_Run([b for b in blocks if b], "", _header(path, "", ""), chosen)]


def _pieces(text: str, counter: TokenCounter) -> list[Piece]:
    lines = split_lines(text)
    return pieces_of_lines(lines, counter.count(lines) if lines else [], 1)


def _header(title: str, description: str, heading: str) -> str:
    first = f"{title}: {description}" if description else title
    return f"{first}\n{heading}" if heading and heading != title else first


def _fit(run: _Run, window: int, counter: TokenCounter) -> list[Piece]:
    """Pack a run's blocks so that header + chunk fits `window`, verified by re-counting."""
    context = run.context
    header_tokens = counter.count([context + "\n"])[0]
    if header_tokens > window * HEADER_SHARE:
        context = counter.split(context, int(window * HEADER_SHARE) - 1)[0]
        run.context = context
        header_tokens = counter.count([context + "\n"])[0]
    limit = window - SPECIAL_TOKENS - header_tokens
    pieces = pack(run.blocks, limit, counter)
    # Token counts of lines add up almost exactly; re-count the real text and split again
    # the rare piece whose joined tokenisation came out longer.
    out: list[Piece] = []
    for piece, real in zip(
        pieces, counter.count([f"{context}\n{p.text}" for p in pieces]), strict=True
    ):
        if real + SPECIAL_TOKENS <= window:
            out.append(piece)
        else:
            out.extend(_refit(piece, limit - (real + SPECIAL_TOKENS - window) - 1, counter))
    return out


def _refit(piece: Piece, limit: int, counter: TokenCounter) -> Sequence[Piece]:
    lines = split_lines(piece.text)
    counts = counter.count(lines)
    first = piece.start_line
    line_pieces = pieces_of_lines(lines, counts, first)
    if len(lines) == 1:  # one long line: all of it shares the same line number
        line_pieces = [Piece(lines[0], first, piece.end_line, counts[0])]
    return pack([line_pieces], max(limit, 8), counter)


def _kind_of(text: str) -> ChunkKind:
    stripped = text.strip()
    fenced = stripped.startswith(("```", "~~~")) and stripped.endswith(("```", "~~~"))
    return "code" if fenced else "prose"
