"""A token budget for tool results: a result over it is cut, saying how to get the rest.

Hosts cut tool results themselves (Claude Code at 25,000 tokens, others sooner) without
telling the agent what was lost; a result cut here keeps whole items and says where to go on.
Tokens are counted with the embedding model's tokenizer, the only one bekb has offline (the
default budget, 5,000, is a fifth of the smallest host limit above, room for any difference
between tokenizers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bekb.chunking.blocks import split_lines

Counter = Callable[[Sequence[str]], list[int]]
# More characters than a token of text takes (about 4 in English and code): the most of an
# over-long line worth trying to fit.
CHARS_PER_TOKEN = 8


class Budget:
    """At most `max_tokens` per result, counted by `count` over its compact JSON."""

    def __init__(self, max_tokens: int, count: Counter) -> None:
        self.max_tokens = max_tokens
        self._count = count

    def tokens(self, data: Mapping[str, Any]) -> int:
        """The tokens `data` takes as a result."""
        return self._count([compact(data)])[0]

    def fits(self, data: Mapping[str, Any]) -> bool:
        """Whether `data` is within the budget."""
        text = compact(data)
        # A token covers one character at least: short text needs no counting.
        return len(text) <= self.max_tokens or self._count([text])[0] <= self.max_tokens

    def fit_items(
        self, data: dict[str, Any], key: str, *, what: str, offset: int | None = None, how: str = ""
    ) -> dict[str, Any]:
        """`data` with the list under `key` cut from its end until the result fits (one
        item at least); the note in `truncated` says which `offset` returns the rest (when
        the tool pages) or `how` to get it."""
        items = data[key]
        if self.fits(data):
            return data

        def cut(n: int) -> dict[str, Any]:
            note = f"cut to {n} of {len(items)} {what} to stay within {self.max_tokens} tokens"
            more: dict[str, Any] = {}
            if offset is not None:
                note += f": call again with offset={offset + n} for the rest"
                more["next_offset"] = offset + n
            elif how:
                note += f": {how}"
            return _noted({**data, key: items[:n]}, note, more)

        # At least one item, or paging could never go on (a lone item over the budget
        # is one no smaller result can carry).
        return cut(max(1, self._largest(len(items), cut)))

    def fit_text(
        self, data: dict[str, Any], key: str, *, first_line: int | None, how: str
    ) -> dict[str, Any]:
        """`data` with the text under `key` cut to whole lines until the result fits;
        `truncated` gives the first line left out (when the text has line numbers,
        `first_line` being its first) and `how` to read on."""
        lines = split_lines(data[key])  # numbered as the file's lines are
        # Text far over the budget is never tokenised whole (a 12 MB file took 9 s): only
        # the lines within what the budget could hold are tried.
        most = self.max_tokens * CHARS_PER_TOKEN  # characters the budget could hold
        reach = _lines_within(lines, most)
        if reach == len(lines) and self.fits(data):
            return data

        def cut(n: int) -> dict[str, Any]:
            note = (
                f"cut to {n} of {len(lines)} lines to stay within {self.max_tokens} tokens: {how}"
            )
            more = {} if first_line is None else {"next_start_line": first_line + n}
            return _noted({**data, key: "".join(lines[:n])}, note, more)

        whole = self._largest(reach, cut)
        if whole or not lines:
            return cut(whole)
        # The first line alone is over the budget (a minified or one-line file): its start
        # is shown, and reading on starts after it, or paging would ask for it forever.
        line = lines[0]

        def cut_line(n: int) -> dict[str, Any]:
            note = (
                f"its first line alone is over {self.max_tokens} tokens: cut to {n} of "
                f"{len(line)} characters; {how}"
            )
            more = {} if first_line is None else {"next_start_line": first_line + 1}
            return _noted({**data, key: line[:n]}, note, more)

        return cut_line(self._largest(min(len(line), most), cut_line))

    def _largest(self, count: int, cut: Callable[[int], dict[str, Any]]) -> int:
        """The most items (0..count) that `cut` can keep within the budget (at least 0)."""
        low, high = 0, count
        while low < high:  # binary search: counting tokens is the cost
            middle = (low + high + 1) // 2
            if self.fits(cut(middle)):
                low = middle
            else:
                high = middle - 1
        return low


def _lines_within(lines: Sequence[str], chars: int) -> int:
    """How many of the first `lines` together hold at most `chars` characters."""
    total = 0
    for count, line in enumerate(lines):
        total += len(line)
        if total > chars:
            return count
    return len(lines)


def _noted(data: dict[str, Any], note: str, more: dict[str, Any]) -> dict[str, Any]:
    """`data` with `note` (and `more`) in `truncated`, after any note already there."""
    earlier = data.get("truncated")
    if earlier:
        note = f"{earlier['note']}; {note}"
        more = {**{k: v for k, v in earlier.items() if k != "note"}, **more}
    return {**data, "truncated": {"note": note, **more}}


def compact(data: Mapping[str, Any]) -> str:
    """`data` as a tool result's text carries it: JSON without spaces."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
