"""Chunking: turn one source file into chunks that fit the embedding model's window."""

from __future__ import annotations

import hashlib
from collections import Counter
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
from bekb.chunking.markdown import first_heading, is_code_block, sections, shared_heading
from bekb.chunking.syntax import GRAMMARS, code_blocks
from bekb.domain import Chunk, ChunkKind
from bekb.errors import ConfigError

# Bump when chunk boundaries, context headers or labels change: it forces a full rebuild.
CHUNKER_VERSION = "7"
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdx"})
# A context header never takes more than this share of the window.
HEADER_SHARE = 0.25
# A section this small (a bare heading) is merged into the next one.
MIN_SECTION_TOKENS = 24
# A chunk this small (a horizontal rule, a closing line) is folded into a neighbour.
MIN_CHUNK_TOKENS = 12
# Below this a context header and one token of text no longer fit reliably.
MIN_WINDOW_TOKENS = 16

__all__ = ["CHUNKER_VERSION", "TokenCounter", "chunk_file"]


def chunk_file(
    path: str, text: str, file_sha256: str, counter: TokenCounter, *, max_tokens: int = 0
) -> list[Chunk]:
    """Chunks of one file, in order; their texts concatenate back to the file's text.

    Whitespace-only stretches between chunks are the only text not kept. `max_tokens` caps
    the chunk size (context header included) below the model's own window.

    Raises:
        ConfigError: the window is smaller than MIN_WINDOW_TOKENS.
    """
    window = min(counter.max_tokens, max_tokens) if max_tokens else counter.max_tokens
    if window < MIN_WINDOW_TOKENS:
        raise ConfigError(
            f"chunk size of {window} tokens is too small: use at least {MIN_WINDOW_TOKENS} "
            "(chunk_tokens = 0 means the model's own maximum)"
        )
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
    previous: _Run | None = None
    for run, piece in placed:
        if not piece.text.strip():
            continue
        # A run's pieces follow each other; its first chunk holds what was joined to it.
        label = run.label if run is not previous else ""
        previous = run
        kind = (
            run.kind if run.kind != "prose" else ("code" if is_code_block(piece.text) else "prose")
        )
        body = f"{run.context}\n{piece.text}"
        seen[body] += 1
        digest = hashlib.sha256(f"{path}\0{body}\0{seen[body]}".encode()).hexdigest()
        chunks.append(
            Chunk(
                id=digest[:32],
                path=path,
                ordinal=len(chunks),
                heading=run.heading,
                label=label,
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
    """Fold pieces too small to stand alone (a `---` rule, a stray line) into a neighbour.

    Frontmatter is neither folded nor a host: it stays its own `frontmatter` chunk.
    """
    out = list(placed)
    i = 0
    while i < len(out):
        run, piece = out[i]
        if piece.tokens >= MIN_CHUNK_TOKENS or len(out) == 1 or run.kind == "frontmatter":
            i += 1
            continue
        merged = False
        for j in (i - 1, i + 1):
            if not 0 <= j < len(out) or out[j][0].kind == "frontmatter":
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
        self,
        blocks: list[list[Piece]],
        heading: str,
        context: str,
        kind: ChunkKind = "prose",
        *,
        label: str = "",
    ) -> None:
        self.blocks = blocks
        self.heading = heading
        self.context = context
        self.kind = kind
        self.label = label if label != heading else ""


def _markdown_runs(path: str, text: str, counter: TokenCounter) -> list[_Run]:
    front, parts = sections(text, counter)
    title = (front.name if front else "") or first_heading(parts) or PurePosixPath(path).stem
    runs: list[_Run] = []
    carried: list[list[Piece]] = []
    # Trails of the carried sections with text of their own: the label a reader sees covers
    # them too ("Retries" for a short "Backoff" joined to "Idempotency"); a bare heading only
    # leads into the next section. The heading and embedded header stay the section's own
    # (measured: moving them too costs dev.jsonl what it gains dev2.jsonl).
    covered: list[str] = []
    for i, section in enumerate(parts):
        blocks = carried + section.blocks
        size = sum(p.tokens for block in blocks for p in block)
        is_last = i == len(parts) - 1
        if not section.is_frontmatter and size < MIN_SECTION_TOKENS and not is_last:
            carried = blocks
            if section.has_body:
                covered.append(" > ".join(section.trail))
            continue
        heading = " > ".join(section.trail)
        label = shared_heading([*covered, heading])
        carried, covered = [], []
        if section.is_frontmatter:
            runs.append(_Run(blocks, "", _header(title, ""), "frontmatter"))
        else:
            runs.append(_Run(blocks, heading, _header(title, heading), label=label))
    return runs


def _code_runs(path: str, suffix: str, text: str, counter: TokenCounter) -> list[_Run]:
    pieces = _pieces(text, counter)
    blocks = code_blocks(suffix, text, pieces)
    if blocks is None:
        return _plain_runs(path, suffix, text, counter, kind="code")
    return [
        _Run([block.pieces], block.label, _header(path, block.label), "code") for block in blocks
    ]


def _plain_runs(
    path: str, suffix: str, text: str, counter: TokenCounter, kind: ChunkKind | None = None
) -> list[_Run]:
    pieces = _pieces(text, counter)
    chosen: ChunkKind = kind or (
        "data" if suffix in {".json", ".yaml", ".yml", ".toml"} else "prose"
    )
    if chosen == "data":
        return [_Run([pieces], "", _header(path, ""), "data")]  # whole when it fits
    blocks: list[list[Piece]] = [[]]
    for piece in pieces:
        blocks[-1].append(piece)
        if not piece.text.strip():
            blocks.append([])
    return [_Run([b for b in blocks if b], "", _header(path, ""), chosen)]


def _pieces(text: str, counter: TokenCounter) -> list[Piece]:
    lines = split_lines(text)
    return pieces_of_lines(lines, counter.count(lines) if lines else [], 1)


def _header(title: str, heading: str) -> str:
    """The context line(s) embedded with a chunk: document title, then the heading trail.

    The description is not repeated here: it lives in the frontmatter chunk, and on every
    chunk it made all of a file's chunks look alike to the model (measured on the dev set).
    """
    return f"{title}\n{heading}" if heading and heading != title else title


def _fit(run: _Run, window: int, counter: TokenCounter) -> list[Piece]:
    """Pack a run's blocks so that header + chunk fits `window`, verified by re-counting."""
    context = run.context
    header_tokens = counter.count([context + "\n"])[0]
    share = int(window * HEADER_SHARE)
    cut = share - 1
    while header_tokens > share and cut > 0:  # a cut word can re-tokenise longer: re-check
        context = counter.split(context, cut)[0]
        run.context = context
        header_tokens = counter.count([context + "\n"])[0]
        cut -= 1
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
            out.extend(_refit(piece, context, window, limit, counter))
    return out


def _refit(
    piece: Piece, context: str, window: int, limit: int, counter: TokenCounter
) -> list[Piece]:
    """Split a piece over the window until each part, re-counted, fits.

    A part cut inside a word re-tokenises into more tokens than it had in place, so every
    part is checked again rather than trusted.
    """
    out: list[Piece] = []
    todo = [piece]
    while todo:
        current = todo.pop()
        real = counter.count([f"{context}\n{current.text}"])[0] + SPECIAL_TOKENS
        own = counter.count([current.text])[0]
        if real <= window or own <= 1:
            out.append(current)
            continue
        lines = split_lines(current.text)
        first = current.start_line
        line_pieces = pieces_of_lines(lines, counter.count(lines), first)
        if len(lines) == 1:  # one long line: all of it shares the same line number
            line_pieces = [Piece(lines[0], first, current.end_line, own)]
        smaller = max(1, min(own - 1, limit - (real - window) - 1))
        parts = pack([line_pieces], smaller, counter)
        if len(parts) == 1:  # the lines' counts undercounted the whole: cut at every line
            parts = line_pieces
        if len(parts) == 1:  # nothing left to cut (cannot happen above MIN_WINDOW_TOKENS)
            out.append(current)
            continue
        todo.extend(reversed(parts))
    return out
