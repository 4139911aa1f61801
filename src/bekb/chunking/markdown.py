"""Markdown: frontmatter as metadata, split on headings, fenced code kept whole.

The one owner of Markdown's syntax in bekb: what opens and closes a fenced code block, and
how frontmatter is read (YAML without aliases, so a "billion laughs" header cannot expand).
Written by hand rather than with llama-index's MarkdownNodeParser because bekb needs what that
parser does not give: exact line spans for citations, lossless coverage (a file's chunks
concatenate back to it), and sizes measured with the embedding model's own tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from bekb.chunking.blocks import Piece, TokenCounter, pieces_of_lines, split_lines

# ATX heading: 1-6 `#`, then the title; a closing `#` run counts only after a space (`C#`).
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FENCE_MARKS = ("```", "~~~")
# A heading title or frontmatter name longer than this is cut: every chunk carries it.
MAX_TITLE_CHARS = 200
# A frontmatter description longer than this is cut (it is listed, not read in full).
MAX_DESCRIPTION_CHARS = 2000
# Frontmatter longer than this is not parsed as YAML (its lines still count as frontmatter).
MAX_FRONTMATTER_CHARS = 64 * 1024
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

    @property
    def has_body(self) -> bool:
        """Whether the section holds a line of text besides its heading."""
        pieces = [piece for block in self.blocks for piece in block]
        return any(p.text.strip() and not _HEADING.match(_line_of(p)) for p in pieces)


def shared_heading(headings: Sequence[str]) -> str:
    """The heading trail all of `headings` share (`A > B` for `A > B > C` and `A > B > D`):
    what a chunk over two sections, or a passage over several, is labelled by."""
    if not headings:
        return ""
    trails = [h.split(" > ") for h in headings]
    shared: list[str] = []
    for parts in zip(*trails, strict=False):
        if any(p != parts[0] for p in parts):
            break
        shared.append(parts[0])
    return " > ".join(shared)


def parse_frontmatter(lines: list[str]) -> Frontmatter | None:
    """The frontmatter at the top of a file, if any (malformed YAML still counts as one)."""
    end = frontmatter_end(lines)
    if end is None:
        return None
    fields = frontmatter_fields("".join(lines[1 : end - 1]))
    return Frontmatter(
        end=end,
        name=field_text(fields.get("name"), MAX_TITLE_CHARS),
        description=field_text(fields.get("description")),
    )


def frontmatter_end(lines: list[str]) -> int | None:
    """How many lines the frontmatter at the top spans (closing `---` included), or None."""
    if not lines or lines[0].removeprefix(BOM).strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return i + 1
    return None


def frontmatter_fields(source: str) -> dict[str, Any]:
    """The YAML mapping of a frontmatter block; empty when it is not a mapping or not YAML.

    Aliases are refused (a few hundred bytes of nested aliases expand to gigabytes) and
    oversized blocks are not parsed at all.
    """
    if len(source) > MAX_FRONTMATTER_CHARS:
        return {}
    data: Any
    try:
        data = yaml.load(source, Loader=_NoAliasLoader)
    # Valid YAML can still fail to construct: `date: 2001-13-45` raises ValueError, deep
    # nesting RecursionError.
    except (yaml.YAMLError, ValueError, RecursionError):
        return {}
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing aliases (`*name`): frontmatter never needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", None)
        return super().compose_node(parent, index)


def split_frontmatter(text: str) -> tuple[dict[str, Any], str]:
    """A document's frontmatter fields and the text after the frontmatter."""
    text = text.removeprefix(BOM)
    lines = split_lines(text)
    end = frontmatter_end(lines)
    if end is None:
        return {}, text
    return frontmatter_fields("".join(lines[1 : end - 1])), "".join(lines[end:])


def fence_opening(line: str) -> str | None:
    """The fence (a run of 3+ backticks or tildes) that `line` opens, or None.

    At most three spaces of indent; a backtick fence's info string has no backtick
    ("```x``` ..." is inline code).
    """
    opening = _FENCE.match(line)
    if opening is None:
        return None
    fence = opening.group(1)
    if fence[0] == "`" and "`" in line[opening.end() :]:
        return None
    return fence


def fence_closes(line: str, fence: str) -> bool:
    """Whether `line` closes the code block `fence` opened."""
    stripped = line.strip()
    return stripped.startswith(fence) and set(stripped) == {fence[0]}


def fence_after(text: str, fence: str | None = None) -> str | None:
    """The fence still open at the end of `text`, given the one open at its start."""
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if fence is None:
            fence = fence_opening(line)
        elif fence_closes(line, fence):
            fence = None
    return fence


def looks_like_fence(line: str) -> bool:
    """Whether `line` is a fence line at any indent (fences inside list items count).

    For judging a chunk's lines on their own, without the file around them; splitting a
    file uses `fence_opening` and `fence_closes`, which follow the file's structure.
    """
    return line.lstrip().startswith(_FENCE_MARKS)


def prose_of(text: str) -> str:
    """`text` without its fenced code blocks: each fence line toggles code on or off."""
    kept, fenced = [], False
    for line in text.splitlines():
        if looks_like_fence(line):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def is_code_block(text: str) -> bool:
    """Whether `text` (blank lines aside) opens with a fence and ends with one: a code chunk."""
    stripped = text.strip()
    return stripped.startswith(_FENCE_MARKS) and stripped.endswith(_FENCE_MARKS)


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
            if fence_closes(line, fence):
                fence = None
                close_block()
            continue
        opening = fence_opening(line)
        if opening is not None:
            close_block()
            fence = opening
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
            title = _clip(title, MAX_TITLE_CHARS)
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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def field_text(value: Any, limit: int = MAX_DESCRIPTION_CHARS) -> str:
    """A frontmatter value as one line of text, cut at `limit` characters.

    Scalars only: a list or mapping is no name or description. The value is cut before it
    is folded, so a huge one costs no more than its first characters.
    """
    if value is None or isinstance(value, dict | list | set | tuple):
        return ""
    text = value if isinstance(value, str) else str(value)
    return _clip(" ".join(text[: limit * 4].split()), limit)
