"""Agent files: which files under the root are agents, and finding one by name or path."""

from __future__ import annotations

import difflib
import os
import posixpath
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from bekb.chunking.markdown import field_text, split_frontmatter
from bekb.errors import CorpusError, UsageError
from bekb.files import FileBytes, Unreadable, read_regular, read_text

AGENTS_DIR = "agents"
SPECIALISTS_DIR = "specialists"
# Folders never searched for agent files (nor selected in workspace scope).
SKIPPED_DIRS = frozenset({"node_modules"})
# Claude Code keeps a project's agents in `.claude/agents/`: the one hidden folder searched.
CLAUDE_DIR = ".claude"
CLOSE_MATCHES = 5
# An unknown persona name longer than this is cut in the error message.
SHOWN_CHARS = 80


def skipped_dir(name: str) -> bool:
    """Whether a folder of this name is never searched (hidden folders, node_modules)."""
    return name.startswith(".") or name in SKIPPED_DIRS


def is_agent_path(rel: str) -> bool:
    """Whether a root-relative path is where agent files live.

    An agent file is a `.md` file inside a folder named `agents` below a repository folder
    (not the repository that happens to be called "agents"), or under the top-level
    `specialists/`; never inside a hidden folder (but `.claude/agents/`) or node_modules.
    """
    parts = PurePosixPath(rel).parts
    folders = parts[:-1]
    hidden = (
        skipped_dir(p) and not (p == CLAUDE_DIR and folders[i + 1 : i + 2] == (AGENTS_DIR,))
        for i, p in enumerate(folders)
    )
    if not rel.endswith(".md") or any(hidden):
        return False
    return AGENTS_DIR in parts[1:-1] or parts[0] == SPECIALISTS_DIR


def find_agent_files(root: Path, configured: Iterable[str] = ()) -> dict[str, str]:
    """Map each agent file's name (frontmatter `name`) to its path relative to `root`.

    The `configured` agent files (the `agent_files` setting) come first and count wherever
    they are (a project's own `agents/pay.md`), named by their frontmatter `name` or, without
    one, their stem. Only regular files inside the root count (a symlink out of it, a FIFO
    or a device is never read). When two files share a name, the first wins.
    """
    if not root.is_dir():
        raise CorpusError(f"workspace root {root} is not a directory: check --root / BEKB_ROOT")
    root = root.resolve()
    found: dict[str, str] = {}
    candidates = [(agent_key(a), True) for a in configured]
    candidates += [(rel, False) for rel in sorted(_agent_paths(root))]
    for rel, is_configured in candidates:
        name = agent_name(root, rel, configured=is_configured)
        if name is not None:
            found.setdefault(name, rel)
    return found


def agent_key(path: str) -> str:
    """A root-relative agent file path as `Selection.agent_sources` spells it."""
    return posixpath.normpath(PurePosixPath(path).as_posix())


def agent_name(root: Path, rel: str, *, configured: bool = False) -> str | None:
    """The name of the agent file `root/rel` (its frontmatter `name`, else its stem), or
    None when it is none: not a regular file inside `root`, or (unless `configured`, when
    the stem names it) no frontmatter name."""
    text = _read_text(root, rel)
    if text is None:
        return None  # unreadable files are the corpus report's business, not the persona's
    fields, _ = split_frontmatter(text)
    if "name" not in fields and not configured:
        return None
    return field_text(fields.get("name")) or PurePosixPath(rel).stem


def load_agent_file(
    root: Path, name_or_path: str, configured: Iterable[str] = ()
) -> tuple[str, str]:
    """An agent file by path relative to `root`, by frontmatter name, or by file stem
    (among the `configured` ones and those `find_agent_files` finds): its root-relative
    path and its text.

    A stem shared by several agent files picks the first by path; pass the full name or the
    path to choose another.

    Raises:
        UsageError: no agent file has that name (the message lists the closest names).
        CorpusError: the path escapes the root, or the file cannot be read.
    """
    root_dir = root.resolve()
    if _looks_like_path(name_or_path):
        try:
            target = (root_dir / name_or_path).resolve()
            exists = target.exists()
        except (OSError, ValueError, RuntimeError):  # too long, a NUL byte, a loop: no file
            target, exists = root_dir, False
        if not target.is_relative_to(root_dir):
            raise CorpusError(
                f"persona path {name_or_path} is outside the root {root}: "
                "pass a path under the root"
            )
        if exists:
            given = target.relative_to(root_dir).as_posix()
            return given, _read_agent(root_dir, given)
    agents = find_agent_files(root_dir, configured)
    found = agents.get(name_or_path) or _by_stem(agents.values(), name_or_path)
    if found is None:
        raise _unknown(name_or_path, agents)
    return found, _read_agent(root_dir, found)


def _agent_paths(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not skipped_dir(d) or d == CLAUDE_DIR]
        prefix = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            rel = f"{prefix}/{name}" if prefix != "." else name
            if is_agent_path(rel):
                out.append(rel)
    return out


def _read_text(root: Path, rel: str) -> str | None:
    got = read_regular(root, rel)
    if not isinstance(got, FileBytes):
        return None
    return got.data.decode("utf-8", errors="replace")


def _read_agent(root: Path, rel: str) -> str:
    got = read_text(root, rel)
    if isinstance(got, Unreadable):
        raise CorpusError(f"cannot read agent file {rel}: {got.reason}")
    return got


def _looks_like_path(name_or_path: str) -> bool:
    return "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith(".md")


def _by_stem(paths: Iterable[str], stem: str) -> str | None:
    matches = sorted(p for p in paths if PurePosixPath(p).stem == stem)
    return matches[0] if matches else None


def _unknown(query: str, agents: dict[str, str]) -> UsageError:
    stems = {PurePosixPath(p).stem for p in agents.values()}
    choices = sorted(set(agents) | stems)
    key = PurePosixPath(query).stem if _looks_like_path(query) else query
    close = difflib.get_close_matches(key, choices, n=CLOSE_MATCHES, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "no close match"
    shown = query if len(query) <= SHOWN_CHARS else query[: SHOWN_CHARS - 1] + "…"
    return UsageError(
        f"no persona named {shown!r} ({hint}); {len(agents)} available, "
        "pass a name or a path relative to the root"
    )
