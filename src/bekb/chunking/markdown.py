"""Markdown chunking: frontmatter as metadata, split on headings, fenced code kept whole.

Written by hand rather than with llama-index's MarkdownNodeParser because bekb needs what that
parser does not give: exact line spans for citations, lossless coverage (a file's chunks
concatenate back to it), and sizes measured with the embedding model's own tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from bekb.chunking.blocks import Piece, TokenCounter, pieces_of_lines, split_lines

# ATX heading: 1-6 `#`, then the title; a closing `#` run counts only after a space (`C#`).
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A heading title or frontmatter name longer than this is cut: every chunk carries it.
MAX_TITLE_CHARS = 200
BOM = "\ufeff"


@dataclass(frozen=True)
class Frontmatter:
    """The YAML header of a Markdown file: its text span and the fields bekb uses."""

    end: int  # number of lines it spans, closing `---` included
    name: str
    description: str


@dataclass
class Section:
    """Lines under one heading, grouped into blocks (paragraphs, fenced code)."""

    trail: tuple[str, ...]
    blocks: list[list[Piece]] = field(default_factory=list)
    is_frontmatter: bool = False


def parse_frontmatter(lines: list[str]) -> Frontmatter | None:
    """The frontmatter at the top of a file, if any (malformed YAML still counts as one)."""
    if not lines or lines[0].removeprefix(BOM).strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            data: Any
            try:
                data = yaml.safe_load("".join(lines[1:i]))
            # Valid YAML can still fail to construct: `date: 2001-13-45` raises ValueError,
            # deep nesting RecursionError.
            except (yaml.YAMLError, ValueError, RecursionError):
                data = None
            fields = data if isinstance(data, dict) else {}
            return Frontmatter(
                end=i + 1,
                name=_clip(_one_line(fields.get("name"))),
                description=_one_line(fields.get("description")),
            )
    return None


def sections(text: str, counter: TokenCounter) -> tuple[Frontmatter | None, list[Section]]:
    """Split Markdown into its frontmatter and heading sections, each a list of blocks."""
    lines = split_lines(text)
    counts = counter.count(lines) if lines else []
    pieces = pieces_of_lines(lines, counts, 1)
    front = parse_frontmatter(lines)
    out: list[Section] = []
    start = 0
    if front is not None:
        out.append(Section(trail=(), blocks=[pieces[: front.end]], is_frontmatter=True))
        start = front.end
    trail: list[tuple[int, str]] = []
    current = Section(trail=())
    block: list[Piece] = []
    fence: str | None = None

    def close_block() -> None:
        nonlocal block
        if block:
            current.blocks.append(block)
            block = []

    for piece in pieces[start:]:
        line = _line_of(piece)
        if fence is not None:
            block.append(piece)
            if line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = None
                close_block()
            continue
        opening = _FENCE.match(line)
        # A backtick fence's info string has no backtick: "```x``` ..." is inline code.
        if opening and not (opening.group(1)[0] == "`" and "`" in line[opening.end() :]):
            close_block()
            fence = opening.group(1)
            block.append(piece)
            continue
        heading = _HEADING.match(line)
        if heading:
            close_block()
            if current.blocks:
                out.append(current)
            level = len(heading.group(1))
            title = (heading.group(2) or "").strip()
            title = title if title.strip("#") else ""  # `# #` is an empty heading
            title = _clip(title)
            trail = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, title)]
            current = Section(trail=tuple(t for _, t in trail if t))
            block.append(piece)
            continue
        block.append(piece)
        if not line.strip():  # a blank line ends a paragraph (and stays with it)
            close_block()
    close_block()
    if current.blocks:
        out.append(current)
    return front, out


def _line_of(piece: Piece) -> str:
    """The line as Markdown sees it: no BOM on line 1, and a lone CR ends it (CommonMark).

    Only `\\n` splits lines for line numbers; a file with old Mac line ends is one long line
    whose first CR-terminated part can still be a heading or a fence.
    """
    line = piece.text.rstrip("\r\n")
    if piece.start_line == 1:
        line = line.removeprefix(BOM)
    return line.split("\r", 1)[0]


def first_heading(section_list: list[Section]) -> str:
    """The first heading title of a document, used as its title when it has no frontmatter."""
    for section in section_list:
        if section.trail:
            return section.trail[0]
    return ""


def _clip(title: str) -> str:
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


def _one_line(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""
