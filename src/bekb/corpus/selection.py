"""The file set: what the agent files cite (skill folders included), or the whole workspace."""

from __future__ import annotations

import fnmatch
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from bekb.corpus.agents import is_agent_path, skipped_dir
from bekb.domain import SkippedFile
from bekb.errors import ConfigError, CorpusError
from bekb.files import FileBytes, inside, is_regular_file, read_regular

# File types worth indexing; anything else in a skill folder (images, archives) is ignored.
INDEXABLE_SUFFIXES = frozenset(
    {".md", ".markdown", ".mdx", ".txt", ".rst", ".json", ".yaml", ".yml", ".toml"}
    | {".py", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".rs", ".go", ".sh"}
)
SKILL_FILE = "SKILL.md"
# Folders changed this recently (ns) may change again within the same mtime tick.
RACY_NS = 2_000_000_000
# A backtick span is a citation when it looks like a relative file path: a/b.ext
_CITATION = re.compile(r"`([^`\s]+/[^`\s]*\.[A-Za-z0-9]+)`")
# A span with spaces (`my skills/SKILL.md`) is a citation only when it names a file that
# exists: otherwise it is prose (`git add src/app.py`), not a missing citation.
_SPAN = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Selection:
    """The files to index (relative POSIX paths, sorted) and what could not be used."""

    root: Path
    files: tuple[str, ...]
    unresolved: tuple[str, ...]
    refused: tuple[SkippedFile, ...]
    agent_files: tuple[str, ...]
    # The files the agent files cite, with their skill folders: the specialist's own sources
    # (all of `files` but glob matches in the cited scope; a part of them in the workspace).
    cited: frozenset[str] = frozenset()
    # mtime of each agent file and of every folder whose listing decided the file set; None
    # when the set came from include globs (too many folders to track: never reused).
    stamps: tuple[tuple[str, int], ...] | None = field(default=None, compare=False, repr=False)

    def still_current(self) -> bool:
        """Whether selecting again would give the same files: no stamp has moved.

        Costs one `stat` per stamp (the workspace: ~900 folders, a few ms), against a walk
        of the tree and a read of the agent files (~50 ms).
        """
        if self.stamps is None:
            return False
        try:
            return all(os.stat(path).st_mtime_ns == mtime for path, mtime in self.stamps)
        except OSError:
            return False


class _Stamps:
    """Records the mtime of what a selection read, for Selection.still_current."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.racy = False
        self._started = time.time_ns()

    def add(self, path: Path) -> None:
        """Stamp `path`, or its nearest existing folder (where it would appear) if missing."""
        for candidate in (path, *path.parents):
            try:
                mtime = os.stat(candidate).st_mtime_ns
            except (OSError, ValueError):
                continue
            self.seen.setdefault(str(candidate), mtime)
            # A change in the same clock tick as this listing would leave the mtime as it
            # is now (filesystems with coarse mtimes): such a selection is not reused.
            self.racy |= self._started - mtime < RACY_NS
            return

    def frozen(self) -> tuple[tuple[str, int], ...] | None:
        """The stamps, or None when the selection must not be reused."""
        return None if self.racy else tuple(self.seen.items())


def cited_paths(agent_text: str) -> list[str]:
    """Backtick-quoted relative paths in an agent file, in order of first mention."""
    seen: dict[str, None] = {}
    for match in _CITATION.finditer(agent_text):
        seen.setdefault(match.group(1), None)
    return list(seen)


def check_root(root: Path) -> Path:
    """The resolved workspace root, or ConfigError when it is not a directory."""
    if not root.exists():
        raise ConfigError(
            f"workspace root {root} does not exist: pass --root, set BEKB_ROOT, "
            "or run `bekb corpus sync`"
        )
    if not root.is_dir():
        raise ConfigError(f"workspace root {root} is not a directory")
    return root.resolve()


def select_files(
    root: Path,
    *,
    agent_files: Iterable[str],
    scope: Literal["cited", "workspace"] = "cited",
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> Selection:
    """Resolve the corpus under `root`: cited files, their skill folders, globs, minus excludes.

    The `workspace` scope adds every skill folder and agent file under the root to the cited set.
    """
    root = check_root(root)
    agents = tuple(agent_files)
    includes = tuple(include)
    stamps = _Stamps()
    chosen: set[str] = set()
    unresolved: dict[str, None] = {}  # ordered, and a membership test stays cheap
    refused: dict[str, SkippedFile] = {}

    def refuse(path: str, reason: str) -> None:
        refused.setdefault(path, SkippedFile(path, reason))

    for agent in agents:
        agent_path = inside(root, agent)
        if agent_path is None:
            refuse(agent, "agent file is outside the workspace root")
            continue
        stamps.add(agent_path)
        got = read_regular(root, agent)
        if not isinstance(got, FileBytes):
            raise CorpusError(f"cannot read agent file {agent}: {got.reason}")
        agent_text = got.data.decode("utf-8", errors="replace")
        for cited in cited_paths(agent_text):
            _add_citation(root, cited, chosen, unresolved, refuse, stamps)
        for cited in dict.fromkeys(_SPAN.findall(agent_text)):
            spaced = "/" in cited and cited.strip() == cited and " " in cited
            if spaced and _names_a_file(root / cited):
                _add_citation(root, cited, chosen, unresolved, refuse, stamps)

    from_citations = set(chosen)
    if scope == "workspace":
        for rel in _walk(root, root, refuse, stamps):
            if _is_workspace_file(rel):
                chosen.add(rel)
        chosen.update(_skill_folder_files(root, chosen, refuse, stamps))

    for pattern in includes:
        for path in sorted(root.glob(_relative_glob(pattern))):
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() and not path.exists():
                refuse(rel, "broken or looping symlink")
            elif inside(root, rel) is None:
                refuse(rel, "symlink points outside the workspace root")
            elif is_regular_file(path):
                chosen.add(rel)
            elif path.exists() and not path.is_dir():
                refuse(rel, "not a regular file")

    excluded = tuple(exclude)
    chosen.difference_update(PurePosixPath(agent).as_posix() for agent in agents)
    files = sorted(p for p in chosen if not any(fnmatch.fnmatch(p, g) for g in excluded))
    return Selection(
        root=root,
        files=tuple(files),
        unresolved=tuple(unresolved),
        refused=tuple(refused[k] for k in sorted(refused)),
        agent_files=agents,
        cited=frozenset(from_citations.intersection(files)),
        stamps=None if includes else stamps.frozen(),
    )


def _relative_glob(pattern: str) -> str:
    pure = PurePosixPath(pattern)
    if not pattern or pure.is_absolute() or ".." in pure.parts:
        raise ConfigError(
            f"include glob {pattern!r} must be a non-empty pattern relative to the workspace "
            "root, without `..`"
        )
    return pattern


def _add_citation(
    root: Path,
    cited: str,
    chosen: set[str],
    unresolved: dict[str, None],
    refuse: _Refuse,
    stamps: _Stamps,
) -> None:
    pure = PurePosixPath(cited)
    if pure.is_absolute() or ".." in pure.parts:
        refuse(cited, "cited path escapes the workspace root")
        return
    rel = pure.as_posix()  # `./a/b.md` and `a//b.md` are the file `a/b.md`
    candidate = root / rel
    stamps.add(candidate.parent)  # the file appearing or going changes its folder
    try:
        if candidate.is_symlink() and not candidate.exists():
            refuse(rel, "broken or looping symlink")
            return
        if candidate.exists() and inside(root, rel) is None:
            refuse(rel, "cited path resolves outside the workspace root (symlink)")
            return
        is_file = candidate.is_file()
        if not is_file and candidate.exists() and not candidate.is_dir():
            refuse(rel, "not a regular file")
            return
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte: not a usable path
        refuse(rel, f"cited path cannot be opened ({getattr(exc, 'strerror', None) or exc})")
        return
    if not is_file:
        unresolved.setdefault(rel, None)  # two agent files may cite the same missing path
        return
    chosen.add(rel)
    if candidate.name == SKILL_FILE:
        folder = candidate.parent
        chosen.update(_walk(root, folder, refuse, stamps))


def _names_a_file(candidate: Path) -> bool:
    try:
        return candidate.is_file() or candidate.is_symlink()
    except (OSError, ValueError):
        return False


class _Refuse(Protocol):  # the shape of the `refuse` callback
    def __call__(self, path: str, reason: str) -> None: ...


def _skill_folder_files(
    root: Path, chosen: set[str], refuse: _Refuse, stamps: _Stamps
) -> Iterator[str]:
    for rel in sorted(chosen):
        if PurePosixPath(rel).name == SKILL_FILE:
            yield from _walk(root, root / PurePosixPath(rel).parent, refuse, stamps)


def _is_workspace_file(rel: str) -> bool:
    """Skill files and agent files: the workspace scope's definition of "knowledge"."""
    return PurePosixPath(rel).name == SKILL_FILE or is_agent_path(rel)


def _walk(root: Path, folder: Path, refuse: _Refuse, stamps: _Stamps) -> Iterator[str]:
    """Indexable files below `folder`, as root-relative paths; never follows links out."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not skipped_dir(d))
        base = Path(dirpath)
        stamps.add(base)
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in INDEXABLE_SUFFIXES:
                continue
            rel = (base / name).relative_to(root).as_posix()
            path = base / name
            if path.is_symlink():
                if not path.exists():
                    refuse(rel, "broken or looping symlink")
                    continue
                if inside(root, rel) is None:
                    refuse(rel, "symlink points outside the workspace root")
                    continue
            if not is_regular_file(path):
                refuse(rel, "not a regular file (a FIFO, device or socket)")
                continue
            yield rel
