"""Terminal output for the CLI; the JSON shapes themselves live in `bekb.contracts`."""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from collections.abc import Iterator
from typing import Any

import typer

from bekb.domain import IndexReport, Progress

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
    kind = "full rebuild" if report.full_rebuild else "incremental"
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
