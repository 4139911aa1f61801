"""Snippets: the lines of a passage that match a query, for a reader to see why it ranked."""

from __future__ import annotations

import re
from collections.abc import Mapping

from bekb.domain import Hit
from bekb.retrieval.bm25 import WORD, word_stem

# Lines a snippet shows at most.
SNIPPET_LINES = 3
# A snippet line longer than this is cut (a table row, a minified line).
LINE_CHARS = 160
# A Markdown heading: the hit's heading trail shows it already.
_HEADING = re.compile(r"#{1,6} ")


def matched_lines(
    text: str, first_line: int, weights: Mapping[str, float], limit: int = SNIPPET_LINES
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The file line numbers of the `limit` lines of `text` (which starts at `first_line`)
    holding the most weight of query stems, in file order, and the stems found. Headings
    are left out (a hit shows its heading trail)."""
    scored: list[tuple[float, int]] = []
    found: set[str] = set()
    # One pass over the lines; `word_stem` is cached, so a word seen again costs a lookup.
    for offset, line in enumerate(text.split("\n")):
        if _HEADING.match(line):
            continue
        stems = {stem for word in WORD.findall(line) if (stem := word_stem(word)) in weights}
        if stems:
            found |= stems
            scored.append((-sum(weights[s] for s in stems), offset))
    best = sorted(scored)[:limit]
    return tuple(sorted(first_line + offset for _, offset in best)), tuple(sorted(found))


def snippet_lines(hit: Hit, line_chars: int = LINE_CHARS) -> list[tuple[int, str]]:
    """What a reader is shown of a hit: the lines that matched the query (else its first
    two lines that say something), each as (file line number, text cut to `line_chars`)."""
    lines = hit.text.split("\n")
    said = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    numbers = list(hit.matched_lines) or [hit.start_line + i for i in said[:2]]
    shown = []
    for number in numbers:
        line = lines[number - hit.start_line].rstrip()
        shown.append((number, line if len(line) <= line_chars else line[: line_chars - 1] + "…"))
    return shown
