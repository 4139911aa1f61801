"""Re-run the indexer whenever corpus files change, one rebuild per debounced burst of edits."""

from __future__ import annotations

import fnmatch
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from bekb.corpus.selection import INDEXABLE_SUFFIXES, SKILL_FILE, Selection, check_root
from bekb.domain import IndexReport
from bekb.errors import BekbError
from bekb.settings import Settings

RebuildCallback = Callable[[IndexReport], None]
ErrorCallback = Callable[[BekbError], None]

# Changes keep joining one batch while they arrive within `debounce_ms` of each other, but
# a batch is cut after this long so that endless churn still gets indexed now and then.
MAX_BATCH_MS = 5000


class Watchable(Protocol):
    """What `watch` needs of a knowledge base (`KnowledgeBase` is one)."""

    @property
    def settings(self) -> Settings: ...

    def selection(self) -> Selection: ...

    def index(self) -> IndexReport: ...


@dataclass(frozen=True)
class WatchScope:
    """Which paths under the root can change the index (the rest never trigger a rebuild)."""

    root: Path
    index_dir: Path
    files: frozenset[str]  # selected files, agent files, citations not resolved yet
    folders: tuple[str, ...]  # skill folders: anything appearing inside is indexed
    parents: frozenset[str]  # folders holding `files`: renaming one moves them
    include: tuple[str, ...]
    workspace: bool

    @classmethod
    def of(cls, kb: Watchable, root: Path, index_dir: Path) -> WatchScope:
        """The scope of the knowledge base's current selection (raises what selection raises)."""
        selection = kb.selection()
        settings = kb.settings
        files = {*selection.files, *selection.unresolved, *settings.agent_files}
        files = {PurePosixPath(f).as_posix() for f in files}
        folders = tuple(
            str(PurePosixPath(f).parent)
            for f in sorted(selection.files)
            if PurePosixPath(f).name == SKILL_FILE
        )
        parents = _parents(files)
        return cls(
            root=root,
            index_dir=index_dir,
            files=frozenset(files),
            folders=folders,
            parents=frozenset(parents),
            include=settings.include,
            workspace=settings.scope == "workspace",
        )

    def relevant(self, path: str) -> bool:
        """Whether a change at `path` (absolute, as the watcher reports it) may matter."""
        full = Path(path)
        if full.is_relative_to(self.index_dir):
            return False
        try:
            rel = full.relative_to(self.root).as_posix()
        except ValueError:
            return False
        if rel in self.files or rel in self.parents:
            return True
        pure = PurePosixPath(rel)
        if any(part.startswith(".") for part in pure.parts):
            return False  # .git, editor swap files: selection never picks them
        suffix = pure.suffix.lower()
        # A folder moved in or out carries files that raise no event of their own.
        looks_indexable = suffix in INDEXABLE_SUFFIXES or not suffix or full.is_dir()
        if self.workspace and looks_indexable:
            return True
        if looks_indexable and any(pure.is_relative_to(folder) for folder in self.folders):
            return True
        return any(fnmatch.fnmatch(rel, pattern) for pattern in self.include)


def watch(
    kb: Watchable,
    *,
    debounce_ms: int = 400,
    on_rebuild: RebuildCallback,
    on_error: ErrorCallback,
    stop_event: threading.Event | None = None,
) -> None:
    """Index now, then re-index after every burst of changes under the root, until stopped.

    A burst ends when no change arrives for `debounce_ms`; it costs one incremental
    `kb.index()`, whose report goes to `on_rebuild`. A rebuild that fails (locked index,
    unreadable agent file...) goes to `on_error` and watching goes on; files that cannot be
    read are in the report's `skipped`. Changes inside the index dir, hidden files and files
    the selection cannot pick are ignored; a change to an agent file re-resolves its
    citations. Returns when `stop_event` is set or on Ctrl-C (the write lock is held only
    during a rebuild, so nothing is left behind).

    Raises:
        ConfigError: the root is not a directory.
    """
    root = check_root(kb.settings.root)
    index_dir = kb.settings.index_dir.resolve()
    stop = stop_event or threading.Event()
    step = max(1, debounce_ms)
    try:
        # A root deleted and made again (a re-clone, a `git worktree` dance) is a new folder
        # the old watch cannot see: wait for it to exist, then watch it afresh.
        while not stop.is_set():
            if _identity(root) is None:
                stop.wait(step / 1000)
                continue
            _watch_folder(kb, root, index_dir, step, stop, on_rebuild, on_error)
    except KeyboardInterrupt:  # Ctrl-C during a rebuild: its lock is already released
        return


def _watch_folder(
    kb: Watchable,
    root: Path,
    index_dir: Path,
    step: int,
    stop: threading.Event,
    on_rebuild: RebuildCallback,
    on_error: ErrorCallback,
) -> None:
    """Index, then re-index after each burst of changes, while `root` is the same folder."""
    import watchfiles

    folder = _identity(root)
    scope = _scope(kb, root, index_dir, None)

    def relevant(_change: watchfiles.Change, path: str) -> bool:
        return scope.relevant(path)

    # The first (empty) yield comes once the watcher is listening: index then, so no edit
    # made after the initial report is missed. Later empty yields are idle ticks.
    batches = watchfiles.watch(
        root,
        watch_filter=relevant,
        debounce=max(MAX_BATCH_MS, step),
        step=step,
        stop_event=stop,
        rust_timeout=step,
        yield_on_timeout=True,
        raise_interrupt=False,
    )
    started = False
    try:
        for batch in batches:
            gone = _identity(root) != folder
            if started and not batch and not gone:
                continue
            started = True
            try:
                report = kb.index()
            except BekbError as exc:
                on_error(exc)
            else:
                on_rebuild(report)
            if gone:
                return
            scope = _scope(kb, root, index_dir, scope)
    finally:
        batches.close()


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, or None when there is none at that path."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def _scope(kb: Watchable, root: Path, index_dir: Path, previous: WatchScope | None) -> WatchScope:
    # A selection that fails (agent file unreadable) fails the rebuild too, which reports it.
    try:
        return WatchScope.of(kb, root, index_dir)
    except BekbError:
        if previous is not None:
            return previous
        agents = frozenset(PurePosixPath(a).as_posix() for a in kb.settings.agent_files)
        parents = frozenset(_parents(agents))
        workspace = kb.settings.scope == "workspace"
        return WatchScope(root, index_dir, agents, (), parents, kb.settings.include, workspace)


def _parents(paths: set[str] | frozenset[str]) -> set[str]:
    return {str(p) for f in paths for p in PurePosixPath(f).parents if str(p) != "."}
