"""Terminal output for the CLI; the JSON shapes themselves live in `bekb.contracts`."""

from __future__ import annotations

import json
import sys
from typing import Any

from bekb.domain import IndexReport

SNIPPET_CHARS = 240


def print_json(data: Any) -> None:
    """Write `data` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


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
