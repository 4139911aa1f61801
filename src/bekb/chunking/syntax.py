"""Code chunking: split at top-level definitions where a tree-sitter grammar is installed.

llama-index's CodeSplitter wraps the same tree-sitter parsers but returns bare strings: it
keeps neither line spans (needed for citations) nor the model-token budget, so bekb walks the
syntax tree itself and reuses the same block packing as Markdown.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bekb.chunking.blocks import Piece

# suffix → (grammar module, function returning the language)
GRAMMARS: dict[str, tuple[str, str]] = {
    ".py": ("tree_sitter_python", "language"),
    ".js": ("tree_sitter_javascript", "language"),
    ".jsx": ("tree_sitter_javascript", "language"),
    ".mjs": ("tree_sitter_javascript", "language"),
    ".cjs": ("tree_sitter_javascript", "language"),
    ".ts": ("tree_sitter_typescript", "language_typescript"),
    ".tsx": ("tree_sitter_typescript", "language_tsx"),
    ".rs": ("tree_sitter_rust", "language"),
    ".go": ("tree_sitter_go", "language"),
}


@dataclass(frozen=True)
class CodeBlock:
    """A top-level definition (with the comments above it) and a short label for it."""

    pieces: list[Piece]
    label: str


def code_blocks(suffix: str, text: str, pieces: Sequence[Piece]) -> list[CodeBlock] | None:
    """Blocks at top-level syntax boundaries, or None when no grammar is available."""
    parser = _parser(suffix)
    if parser is None or not pieces:
        return None
    try:
        tree = parser.parse(text.encode("utf-8", errors="surrogatepass"))
    except (ValueError, UnicodeError):
        return None
    starts: list[tuple[int, str]] = []
    comment_row: int | None = None  # first row of the comments just above the next node
    for node in tree.root_node.children:
        if node.type in ("comment", "line_comment", "block_comment"):
            if comment_row is None:
                comment_row = node.start_point[0]
            continue  # comments travel with the definition below them
        first = node.text.decode("utf-8", errors="replace").split("\n", 1)[0] if node.text else ""
        row = node.start_point[0] if comment_row is None else comment_row
        starts.append((row, _label(first)))
        comment_row = None
    if not starts:
        return None
    blocks: list[CodeBlock] = []
    boundaries = [0] + [row for row, _ in starts[1:]] + [len(pieces)]
    labels = [label for _, label in starts]
    for i, label in enumerate(labels):
        begin, end = boundaries[i], boundaries[i + 1]
        if begin < end:
            blocks.append(CodeBlock(list(pieces[begin:end]), label))
    return blocks


def _parser(suffix: str) -> Any | None:
    spec = GRAMMARS.get(suffix)
    if spec is None:
        return None
    try:
        import tree_sitter

        grammar = importlib.import_module(spec[0])
        return tree_sitter.Parser(tree_sitter.Language(getattr(grammar, spec[1])()))
    except (ImportError, AttributeError, ValueError):
        return None


def _label(first_line: str) -> str:
    label = first_line.strip().rstrip("{:(").strip()
    return label[:80]
