"""Checks on what callers hand the library: a question or query, and a number of hits.

The CLI runs the same checks before anything slow (a first run builds the index), so bad
input fails at once with the same message from every front door.
"""

from __future__ import annotations

from typing import Any

from bekb.errors import UsageError

MAX_QUESTION_CHARS = 4000
MAX_K = 100


def check_text(text: Any, what: str) -> str:
    """`text` with control characters made spaces and the ends stripped.

    Raises:
        UsageError: not text, longer than MAX_QUESTION_CHARS, or nothing printable.
    """
    if not isinstance(text, str):
        raise UsageError(f"the {what} must be text")
    if len(text) > MAX_QUESTION_CHARS:
        raise UsageError(f"the {what} is {len(text)} characters; the limit is {MAX_QUESTION_CHARS}")
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text).strip()
    if not cleaned:
        raise UsageError(f"the {what} is empty")
    return cleaned


def check_k(k: Any) -> int | None:
    """`k` as given (None: the configured default); above MAX_K it is capped by the caller.

    Raises:
        UsageError: not a whole number, or below 1.
    """
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int):
        raise UsageError(f"k must be a whole number (got {k!r})")
    if k < 1:
        raise UsageError(f"k must be at least 1 (got {k})")
    return k


def check_persona(name: Any) -> str | None:
    """`name` without surrounding space (None: the configured agent).

    Raises:
        UsageError: blank (asking for no one is not asking for the default).
    """
    if name is None:
        return None
    if not isinstance(name, str):
        raise UsageError("the persona must be text")
    if not name.strip():
        raise UsageError("the persona is empty: give an agent file's name or path")
    return name.strip()
