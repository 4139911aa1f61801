"""Freshness: the selected files compared with the committed index, cheap enough per search."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace

from bekb.corpus.selection import Selection
from bekb.domain import CorpusStatus, FileRecord, FileStatus, SourceFile
from bekb.indexing.state import Plan, plan


class Freshness:
    """Compares files with records by stat, hashing only files whose stat moved.

    A file found unchanged behind a new stat (a checkout or copy touched it) is remembered
    and trusted by that stat from then on, so a search does not hash the whole corpus again
    until the next `index()`.
    """

    def __init__(self) -> None:
        self._restat: dict[str, SourceFile] = {}
        self._restat_lock = threading.Lock()  # searches in several threads share one

    def plan(self, records: Mapping[str, FileRecord], selection: Selection) -> Plan:
        """The selected files compared with `records` (what an index run would do)."""
        with self._restat_lock:
            known = list(self._restat.items())
        seen = {
            path: replace(records[path], size=source.size, mtime_ns=source.mtime_ns)
            for path, source in known
            if path in records and records[path].sha256 == source.sha256
        }
        todo = plan(selection.root, selection.files, {**records, **seen}, trust_stat=True)
        with self._restat_lock:
            self._restat.update((source.path, source) for source in todo.restat)
        return todo

    def stale_paths(self, records: Mapping[str, FileRecord], selection: Selection) -> set[str]:
        """Paths added, changed or deleted since `records` were committed."""
        todo = self.plan(records, selection)
        return {f.source.path for f in todo.work} | set(todo.deleted)

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
            refused=selection.refused,
            unresolved_citations=selection.unresolved_citations,
        )
