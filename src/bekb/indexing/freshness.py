"""Freshness: the selected files compared with the committed index, cheap enough per search."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from bekb.corpus.selection import Selection
from bekb.domain import CorpusStatus, FileRecord, FileStatus, SourceFile
from bekb.indexing.state import Plan, plan

# A long-lived process (an MCP server, chat, an application) may search many times a second,
# and comparing every file costs a stat each: ~15 ms a search at the workspace, ten times
# that at 10x. So searches compare the whole corpus at most once per RECHECK_SECONDS, and
# the files a search returns on every search (`stale_among`): a hit's stale mark is always
# current; a change elsewhere is seen within RECHECK_SECONDS.
RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class _Check:
    records: Mapping[str, FileRecord]
    selection: Selection
    at: float
    stale: frozenset[str]


class Freshness:
    """Compares files with records by stat, hashing only files whose stat moved; keeps the
    file selection while it is current.

    A file found unchanged behind a new stat (a checkout or copy touched it) is remembered
    and trusted by that stat from then on, so a search does not hash the whole corpus again
    until the next `index()`. Both the selection and the last comparison can be reused
    unchecked for a while (`max_age`, RECHECK_SECONDS for searches).
    """

    def __init__(self) -> None:
        self._restat: dict[str, SourceFile] = {}
        self._lock = threading.Lock()  # searches in several threads share one
        self._last: _Check | None = None
        self._selection: Selection | None = None
        self._selection_at = float("-inf")  # when it was last found current

    def selection(self, make: Callable[[], Selection], *, max_age: float = 0.0) -> Selection:
        """The selection `make` returns, reused while no folder it read has changed; with
        `max_age`, reused unchecked for that many seconds after the last check. The caller
        serialises calls (making a selection walks the tree)."""
        now = time.monotonic()
        current = self._selection
        if current is not None:
            if now - self._selection_at < max_age:
                return current
            if current.still_current():
                self._selection_at = now
                return current
        self._selection, self._selection_at = make(), now
        return self._selection

    def plan(self, records: Mapping[str, FileRecord], selection: Selection) -> Plan:
        """The selected files compared with `records` (what an index run would do)."""
        return self._compare(selection.root, selection.files, records)

    def _compare(
        self, root: Path, paths: Collection[str], records: Mapping[str, FileRecord]
    ) -> Plan:
        with self._lock:
            known = list(self._restat.items())
        seen = {
            path: replace(records[path], size=source.size, mtime_ns=source.mtime_ns)
            for path, source in known
            if path in records and records[path].sha256 == source.sha256
        }
        todo = plan(root, paths, {**records, **seen}, trust_stat=True)
        with self._lock:
            self._restat.update((source.path, source) for source in todo.restat)
        return todo

    def stale_paths(
        self, records: Mapping[str, FileRecord], selection: Selection, *, max_age: float = 0.0
    ) -> set[str]:
        """Paths added, changed or deleted since `records` were committed; with `max_age`,
        the answer of a comparison of the same records and selection made less than
        `max_age` seconds ago."""
        now = time.monotonic()
        last = self._last
        if (
            last is not None
            and last.records is records
            and last.selection is selection
            and now - last.at < max_age
        ):
            return set(last.stale)
        stale = self.plan(records, selection).stale
        self._last = _Check(records, selection, now, frozenset(stale))
        return stale

    def stale_among(
        self, records: Mapping[str, FileRecord], root: Path, paths: Collection[str]
    ) -> set[str]:
        """Which of the indexed `paths` changed or vanished since `records` were committed
        (a stat each; a file is read only when its stat moved)."""
        mine = {path: records[path] for path in paths if path in records}
        # A file gone from disk is deleted: the plan of the files still there says so (a
        # path that cannot be read among those compared would be skipped, never stale).
        there = [path for path in mine if (root / path).is_file()]
        return self._compare(root, there, mine).stale

    def corpus_status(
        self, records: Mapping[str, FileRecord], selection: Selection
    ) -> CorpusStatus:
        """Every selected file with its state: indexed, new, changed or deleted."""
        todo = self.plan(records, selection)
        files = [FileStatus(f.source.path, "new", f.source.sha256) for f in todo.new]
        files += [FileStatus(f.source.path, "changed", f.source.sha256) for f in todo.changed]
        files += [FileStatus(p, "indexed", records[p].sha256) for p in todo.unchanged]
        files += [FileStatus(p, "deleted", records[p].sha256) for p in todo.deleted]
        return CorpusStatus(
            root=str(selection.root),
            files=tuple(sorted(files, key=lambda f: f.path)),
            unresolved=selection.unresolved,
            # Refused by selecting (a FIFO, outside the root) or on reading (binary, not UTF-8).
            refused=tuple(sorted((*selection.refused, *todo.skipped), key=lambda f: f.path)),
            unresolved_citations=selection.unresolved_citations,
            unmatched_globs=selection.unmatched_globs,
        )
