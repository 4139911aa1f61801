"""Terminal output for the CLI; the JSON shapes themselves live in `bekb.contracts`."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bekb.chunking.blocks import split_lines
from bekb.domain import Citation, Excerpt, Hit, IndexReport, Progress, heading_tail, location

if TYPE_CHECKING:
    from rich.text import Text

SNIPPET_CHARS = 240
# C0 controls but tab and newline, DEL and C1 controls: what makes a terminal act (move the
# cursor, set the title, write the clipboard) instead of print. Documents are third-party
# text; none of it may reach a terminal.
_CONTROL = re.compile(
    "\x1b\\[[0-?]*[ -/]*[@-~]"  # a whole CSI sequence (cursor, colours, clear screen)
    "|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?"  # a whole OSC one (title, clipboard, links)
    "|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # any other control character
)
# In JSON, C0 controls are escaped by the encoder; DEL, C1 controls and lone surrogates
# (which no UTF-8 stream can carry) are escaped here.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff]")


def plain(text: str) -> str:
    """`text` safe to print on a terminal: control characters removed (tab, newline kept)."""
    return _CONTROL.sub("", text)


class OutputError(Exception):
    """The output could not be written (a full disk, a read-only file): not a bekb failure."""


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print `text` (stripped of control characters) on stdout, or stderr with `err`."""
    with _writing():
        typer.echo(plain(text), err=err, nl=nl)


def print_json(data: Any) -> None:
    """Write `data` as JSON on stdout: valid JSON whatever the text holds (control
    characters and lone surrogates escaped, a non-finite number as null)."""
    text = json.dumps(_finite(data), indent=2, ensure_ascii=False, allow_nan=False)
    with _writing():
        sys.stdout.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise  # the reader went away: the CLI ends quietly
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc)) from exc


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data


def index_summary(report: IndexReport) -> str:
    """The one-line summary printed after `bekb index`."""
    kind = "incremental"
    if report.full_rebuild:
        kind = f"full rebuild: {report.rebuild_reason}" if report.rebuild_reason else "full rebuild"
    return (
        f"indexed ({kind}): {report.added} added, {report.changed} changed, "
        f"{report.removed} removed, {report.unchanged} unchanged; {report.chunks} chunks; "
        f"{report.embedded} embedded, {report.cached} cached; {report.seconds:.2f}s"
    )


def snippet(text: str) -> str:
    """A hit's text on one line, shortened."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def wait_notice(step: Progress) -> None:
    """Print, on stderr, why a build is waiting (an on_progress callback without bars)."""
    if step.stage == "wait":
        echo(step.detail, err=True)


# Rich draws what a terminal shows: hyperlinks (OSC 8) and bold matched words on a TTY (or
# with FORCE_COLOR), plain text in a pipe or with TERM=dumb. Highlighting is left out with
# NO_COLOR; links stay, they are no colour. Every piece of document text is passed through
# `plain` before it becomes a Text, so only rich's own sequences reach the terminal.


def print_rich(lines: Iterable[Text | str]) -> None:
    """Print `lines` on stdout through rich (no wrapping, no markup)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich's own handling exits 1; the CLI's ends quietly with 141, as `echo` does
            raise BrokenPipeError

    console = _Console(file=sys.stdout, highlight=False, markup=False, emoji=False)
    with _writing():
        for line in lines:
            console.print(line, soft_wrap=True)


def place(path: str, start: int, end: int, *, root: Path, full_path: bool) -> Text:
    """`path:a-b` (absolute with `full_path`), linked to the file on a terminal."""
    from rich.style import Style
    from rich.text import Text

    absolute = (root / path).absolute()
    shown = location(str(absolute) if full_path else path, start, end)
    text = Text()
    text.append(plain(shown), style=Style(link=absolute.as_uri()))
    return text


def hit_lines(
    n: int, hit: Hit, *, root: Path, full_path: bool, explain: bool
) -> Iterator[Text | str]:
    """A search hit: its place and heading, copies, scores with `explain`, its snippet."""
    from rich.text import Text

    head = Text(f"{n:>2}. ")
    head.append_text(place(hit.path, hit.start_line, hit.end_line, root=root, full_path=full_path))
    if hit.heading:
        head.append(f"  {plain(heading_tail(hit.heading))}")
    if hit.stale:
        head.append("  (changed since indexing)")
    yield head
    if hit.copies:
        yield "    same text in: " + "; ".join(plain(c.location) for c in hit.copies)
    if explain:
        e = hit.explain
        sim = f"{e.dense_similarity:.3f}" if e.dense_similarity is not None else "-"
        yield (
            f"    score {hit.score:.4f}: dense #{e.dense_rank or '-'} (cos {sim}), "
            f"bm25 #{e.bm25_rank or '-'}"
        )
    yield from snippet_lines(hit)


def snippet_lines(hit: Hit) -> Iterator[Text]:
    """The lines of a hit that matched the query (else its first lines that say
    something), numbered, matched words in bold."""
    from bekb.retrieval import snippets

    shown = snippets.snippet_lines(hit)
    width = len(str(max((number for number, _ in shown), default=0)))
    for number, line in shown:
        yield _numbered(number, width, highlighted(plain(line), hit.matched_stems), indent="    ")


def highlighted(line: str, stems: Sequence[str]) -> Text:
    """`line` with the words whose stems are in `stems` in bold (none with NO_COLOR)."""
    from rich.text import Text

    from bekb.retrieval.bm25 import WORD, word_stem

    text = Text(line)
    if stems and not os.environ.get("NO_COLOR"):
        wanted = set(stems)
        for match in WORD.finditer(line):
            if word_stem(match.group()) in wanted:
                text.stylize("bold", match.start(), match.end())
    return text


def excerpt_lines(excerpt: Excerpt, *, root: Path, full_path: bool) -> Iterator[Text | str]:
    """`bekb show`: the place, then each line with its number."""
    yield place(excerpt.path, excerpt.start_line, excerpt.end_line, root=root, full_path=full_path)
    from rich.text import Text

    width = len(str(excerpt.end_line))
    lines = split_lines(excerpt.text)  # numbered as the file's lines are: only \n ends one
    for number, line in enumerate(lines, start=excerpt.start_line):
        yield _numbered(number, width, Text(plain(line.rstrip("\n"))))


def answer_lines(
    text: str, citations: Sequence[Citation], *, root: Path, full_path: bool
) -> Iterator[Text | str]:
    """An answer's text with the lines that name a quoted passage (`[n] path:a-b …`, as
    quoting answers have them) drawn as `citation_line` draws a citation."""
    heads = {f"[{c.n}] {c.location}": c for c in citations}
    for line in text.splitlines():
        cited = next(
            (c for head, c in heads.items() if line == head or line.startswith(head + "  ")),
            None,
        )
        if cited is None:
            yield plain(line)
        else:
            yield citation_line(cited, root=root, full_path=full_path, indent="")


def citation_line(citation: Citation, *, root: Path, full_path: bool, indent: str = "  ") -> Text:
    """`[n] path:a-b  heading` under an answer."""
    from rich.text import Text

    text = Text(f"{indent}[{citation.n}] ")
    text.append_text(
        place(citation.path, citation.start_line, citation.end_line, root=root, full_path=full_path)
    )
    if citation.heading:
        text.append(f"  {plain(heading_tail(citation.heading))}")
    if citation.stale:
        text.append("  (changed since indexing)")
    return text


def _numbered(number: int, width: int, line: Text, indent: str = "") -> Text:
    from rich.text import Text

    out = Text(f"{indent}{number:>{width}}  ")
    out.append_text(line)
    return out
