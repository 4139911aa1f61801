"""The file set: what the agent files cite (skill folders included), or the whole workspace."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol
from urllib.parse import unquote

from bekb.corpus.agents import agent_key, is_agent_path, skipped_dir
from bekb.domain import CitationForm, CitationProblem, SkippedFile, UnresolvedCitation
from bekb.errors import ConfigError
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
# Links, mentions and bare paths are read from the prose only: a path in a code block or an
# inline code span is an example, not a citation.
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A Markdown link, `[text](target "title")` (an image, `![...](...)`, is no citation), and a
# reference definition, `[id]: target`.
_LINK = re.compile(
    r"(?<!!)\[[^\]\n]*\]\(\s*(<[^>\n]+>|[^\s)]+)(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)"
)
_LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*(<[^>\n]+>|\S+)", re.M)
# Links and images, cut from the prose before mentions and bare paths are read from it (an
# image's target is no citation).
_LINK_OR_IMAGE = re.compile(r"!?\[[^\]\n]*\]\([^)\n]*\)|^ {0,3}\[[^\]\n]+\]:.*$", re.M)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # http:, https:, mailto:... not a file
# `@path`, Claude Code's way to cite a file: `@` opening a word, so never an e-mail address.
_MENTION = re.compile(r"(?<![^\s(\[])@([^\s`'\"()<>\[\]{},;]+)")
# A bare relative path in prose: folders, then a file name (`docs/guide.md`); not a piece of a
# URL, an absolute path or a `~` path. It counts only if it names a file that exists.
_BARE = re.compile(r"(?<![\w@/.\\:~%$-])((?:\.\.?/)*\w[\w.+-]*(?:/[\w.+-]+)+)")
_TRAILING = ".,:;!?"  # sentence punctuation after a path is not part of it


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
    # Every citation naming no usable file, with why: the missing ones (`unresolved`) and
    # the refused ones (also in `refused`), in the order the agent files cite them.
    unresolved_citations: tuple[UnresolvedCitation, ...] = ()
    # mtime of each agent file and of every folder whose listing decided the file set; None
    # when the set came from include globs (too many folders to track: never reused).
    stamps: tuple[tuple[str, int], ...] | None = field(default=None, compare=False, repr=False)
    # Each configured agent file (as `agent_key` spells it) → the files of `files` it cites,
    # with their skill folders.
    agent_sources: Mapping[str, frozenset[str]] = field(
        default_factory=dict, hash=False, repr=False
    )
    # The include globs that match no file.
    unmatched_globs: tuple[str, ...] = ()

    @property
    def unusable_agents(self) -> tuple[SkippedFile, ...]:
        """Configured agent files that cannot be used (missing, unreadable, outside the
        root), with why: reading the index goes on, a build refuses (`require_files`)."""
        return tuple(r for r in self.refused if r.path in self.agent_files)

    def own_files(self, agent: str) -> frozenset[str] | None:
        """The files the configured agent file `agent` answers from, or None when it is not
        one of them: the files it cites (skill folders included) and those no agent file
        cites (scope workspace, include globs), which belong to every agent."""
        cited = self.agent_sources.get(agent_key(agent))
        if cited is None:
            return None
        return cited.union(p for p in self.files if p not in self.cited)

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
        self._missing: set[str] = set()  # looked up once: an agent file may cite 100,000 paths

    def add(self, path: Path | str) -> None:
        """Stamp `path`, or its nearest existing folder (where it would appear) if missing."""
        candidate = os.fspath(path)
        while candidate not in self.seen:
            if candidate not in self._missing:
                try:
                    mtime = os.stat(candidate).st_mtime_ns
                except (OSError, ValueError):
                    self._missing.add(candidate)
                else:
                    self.seen[candidate] = mtime
                    # A change in the same clock tick as this listing would leave the mtime
                    # as it is now (coarse filesystem clocks): such a selection is not reused.
                    self.racy |= self._started - mtime < RACY_NS
                    return
            parent = os.path.dirname(candidate)
            if parent == candidate:
                return
            candidate = parent

    def frozen(self) -> tuple[tuple[str, int], ...] | None:
        """The stamps, or None when the selection must not be reused."""
        return None if self.racy else tuple(self.seen.items())


def cited_paths(agent_text: str) -> list[str]:
    """Backtick-quoted relative paths in an agent file, in order of first mention."""
    seen: dict[str, None] = {}
    for match in _CITATION.finditer(agent_text):
        seen.setdefault(match.group(1), None)
    return list(seen)


@dataclass(frozen=True)
class Reference:
    """A path as an agent file cites it, and how it was written.

    `tentative` references (a bare path in prose, a backtick span with spaces) are citations
    only if they name a file that exists; a missing one is prose, not an unresolved citation.
    """

    path: str
    form: CitationForm
    tentative: bool = False


def references(agent_text: str) -> list[Reference]:
    """Every path an agent file cites, each once (its first form wins): backtick paths, then
    Markdown links, `@path` mentions and bare relative paths with a text file's suffix."""
    found: dict[str, Reference] = {}

    def add(path: str, form: CitationForm, tentative: bool = False) -> None:
        found.setdefault(path, Reference(path, form, tentative))

    for path in cited_paths(agent_text):
        add(path, "backtick")
    for span in dict.fromkeys(_SPAN.findall(agent_text)):
        if "/" in span and span.strip() == span and " " in span:
            add(span, "backtick", tentative=True)
    prose = _prose(agent_text)
    targets = [m.group(1) for m in _LINK.finditer(prose)]
    targets += [m.group(1) for m in _LINK_DEFINITION.finditer(prose)]
    for target in targets:
        linked = _link_path(target)
        if linked is not None:
            add(linked, "link")
    prose = _LINK_OR_IMAGE.sub(" ", prose)
    for match in _MENTION.finditer(prose):
        mentioned = match.group(1).rstrip(_TRAILING)
        if _text_suffix(mentioned):
            add(mentioned, "mention")
    for match in _BARE.finditer(prose):
        bare = match.group(1).rstrip(_TRAILING)
        if _text_suffix(bare):
            add(bare, "bare", tentative=True)
    return list(found.values())


def _prose(text: str) -> str:
    """`text` without its fenced code blocks and inline code spans."""
    lines: list[str] = []
    fence = ""
    for line in text.splitlines():
        opening = _FENCE.match(line)
        if fence:
            if opening and opening.group(1).startswith(fence) and not line.strip(" `~"):
                fence = ""
            continue
        if opening:
            fence = opening.group(1)
            continue
        lines.append(_SPAN.sub(" ", line))
    return "\n".join(lines)


def _link_path(target: str) -> str | None:
    """The file a link target names (anchor and query cut, %-escapes decoded), or None for
    a URL, a bare anchor or a file that is no text document (an image, a PDF)."""
    if target.startswith("<") and target.endswith(">"):
        target = target[1:-1].strip()
    if not target or target.startswith(("#", "//")) or _SCHEME.match(target):
        return None
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    return path if _text_suffix(path) else None


def _text_suffix(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in INDEXABLE_SUFFIXES


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

    A citation is looked for in the agent file's own folder first, then under the root. The
    `workspace` scope adds every skill folder and agent file under the root to the cited set;
    a SKILL.md an include glob matches brings its skill folder, as a cited one does.
    """
    root = check_root(root)
    agents = tuple(agent_files)
    includes = tuple(include)
    found = _Found(root)

    for agent in agents:
        agent_path = inside(root, agent)
        if agent_path is None:
            found.refuse(agent, "agent file is outside the workspace root")
            continue
        found.stamps.add(agent_path)
        got = read_regular(root, agent)
        if not isinstance(got, FileBytes):
            found.refuse(agent, f"agent file cannot be read: {got.reason}")
            continue
        found.cited_by.setdefault(agent_key(agent), set())
        folder = posixpath.dirname(PurePosixPath(agent).as_posix())
        for reference in references(got.data.decode("utf-8", errors="replace")):
            _add_citation(found, reference, agent, folder)

    chosen = found.chosen
    from_citations = set(chosen)
    if scope == "workspace":
        for rel in _walk(root, root, found.refuse, found.stamps):
            if _is_workspace_file(rel):
                chosen.add(rel)
        chosen.update(_skill_folder_files(root, chosen, found.refuse, found.stamps))

    unmatched: list[str] = []
    for pattern in includes:
        matches = sorted(root.glob(_relative_glob(pattern)))
        if not any(is_regular_file(path) for path in matches):
            unmatched.append(pattern)  # a typo selects nothing, and would say nothing
        for path in matches:
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() and not path.exists():
                found.refuse(rel, "broken or looping symlink")
            elif inside(root, rel) is None:
                found.refuse(rel, "symlink points outside the workspace root")
            elif is_regular_file(path):
                chosen.add(rel)
                if path.name == SKILL_FILE and rel not in from_citations:
                    chosen.update(_walk(root, path.parent, found.refuse, found.stamps))
            elif path.exists() and not path.is_dir():
                found.refuse(rel, "not a regular file")

    excluded = tuple(exclude)
    chosen.difference_update(PurePosixPath(agent).as_posix() for agent in agents)
    files = sorted(p for p in chosen if not any(fnmatch.fnmatch(p, g) for g in excluded))
    kept = set(files)
    return Selection(
        root=root,
        files=tuple(files),
        unresolved=tuple(found.unresolved),
        refused=tuple(found.refused[k] for k in sorted(found.refused)),
        agent_files=agents,
        cited=frozenset(from_citations.intersection(files)),
        stamps=None if includes else found.stamps.frozen(),
        unresolved_citations=tuple(found.citations.values()),
        agent_sources={a: frozenset(kept.intersection(s)) for a, s in found.cited_by.items()},
        unmatched_globs=tuple(unmatched),
    )


def unusable_agent_line(agent: SkippedFile) -> str:
    """How `bekb index` and `bekb status` name a configured agent file that cannot be used:
    "agents/x.md (agent_files) cannot be read: ..." (its refusal, which says "agent file")."""
    return f"{agent.path} (agent_files) {agent.reason.removeprefix('agent file ')}"


def require_files(selection: Selection) -> Selection:
    """`selection`, or ConfigError when a build must not use it: a configured agent file
    cannot be used (building without it would drop what it cites from the index), or it
    holds no file (an index of nothing is a setting to fix); the message says which."""
    if selection.unusable_agents:
        raise ConfigError(
            f"{unusable_agent_line(selection.unusable_agents[0])}: restore it or change "
            "agent_files in bekb.toml; the index was left as it is"
        )
    if selection.files:
        return selection
    agents = ", ".join(selection.agent_files) or "none"
    problems = len(selection.unresolved_citations)
    why = (
        f"their citations name no usable file ({problems} listed by `bekb corpus status`)"
        if problems
        else "they cite no file"
    )
    raise ConfigError(
        f"the settings select no file to index under {selection.root} (agent files: {agents}; "
        f"{why}): set `agent_files` to agent files that cite documents, add `include` globs "
        '(include = ["docs/**/*.md"]) or set scope = "workspace" in bekb.toml; '
        "`bekb init` writes one for a folder of agents and skills"
    )


def _relative_glob(pattern: str) -> str:
    pure = PurePosixPath(pattern)
    if not pattern or pure.is_absolute() or ".." in pure.parts:
        raise ConfigError(
            f"include glob {pattern!r} must be a non-empty pattern relative to the workspace "
            "root, without `..`"
        )
    return pattern


class _Found:
    """What a selection has found so far: files, and the citations it could not use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stamps = _Stamps()
        self.chosen: set[str] = set()
        self.unresolved: dict[str, None] = {}  # ordered, and a membership test stays cheap
        self.refused: dict[str, SkippedFile] = {}
        self.citations: dict[str, UnresolvedCitation] = {}
        self.cited_by: dict[str, set[str]] = {}  # agent_key(agent file) → what it cites

    def cite(self, agent: str, paths: Iterable[str]) -> None:
        """Select `paths` as files the agent file `agent` cites."""
        own = self.cited_by.setdefault(agent_key(agent), set())
        for path in paths:
            self.chosen.add(path)
            own.add(path)

    def refuse(self, path: str, reason: str) -> None:
        """Record a file that cannot be used (the first reason given for it stays)."""
        self.refused.setdefault(path, SkippedFile(path, reason))

    def unusable(self, cited: UnresolvedCitation) -> None:
        """Record a citation that names no usable file (missing ones are also `unresolved`)."""
        if cited.problem == "missing":
            self.unresolved.setdefault(cited.path, None)  # two agent files may cite one path
        else:
            self.refuse(cited.path, cited.detail)
        self.citations.setdefault(cited.path, cited)


# What one place a citation may name is: a file, nothing (absent or a folder), a file that is
# refused, or a name that cannot even be looked up (too long, a NUL byte).
_Kind = Literal["file", "none", "refused", "error"]


def _inspect(root: Path, rel: str) -> tuple[_Kind, CitationProblem, str]:
    candidate = os.path.join(root, rel)
    try:
        mode = os.lstat(candidate).st_mode
        if stat.S_ISLNK(mode):
            try:
                mode = os.stat(candidate).st_mode
            except OSError:
                return "refused", "not_text", "broken or looping symlink"
    except (FileNotFoundError, NotADirectoryError):
        return "none", "missing", ""
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte: not a usable path
        reason = getattr(exc, "strerror", None) or exc
        return "error", "not_text", f"cited path cannot be opened ({reason})"
    if inside(root, rel) is None:
        return "refused", "outside_root", "cited path resolves outside the workspace root (symlink)"
    if stat.S_ISREG(mode):
        return "file", "missing", ""
    if stat.S_ISDIR(mode):
        return "none", "missing", ""
    return "refused", "not_text", "not a regular file"


def _add_citation(found: _Found, reference: Reference, agent: str, folder: str) -> None:
    """Select the file `reference` names, looked for beside the agent file, then under the
    root, or record why there is none."""
    written = reference.path

    def unusable(path: str, problem: CitationProblem, detail: str = "") -> None:
        found.unusable(UnresolvedCitation(path, problem, agent, reference.form, detail))

    if reference.tentative and PurePosixPath(written).is_absolute():
        return
    if PurePosixPath(written).is_absolute() or written.startswith("~"):
        unusable(written, "outside_root", "cited path escapes the workspace root")
        return
    # Where a missing file is reported: beside the agent file for a Markdown link (links are
    # relative to their file), under the root for the other forms (as the corpus writes them).
    bases = (folder, "") if folder else ("",)
    primary = 0 if reference.form == "link" else len(bases) - 1
    places: list[str | None] = []  # None: that reading leaves the root
    for base in bases:
        joined = posixpath.normpath(posixpath.join(base, written))
        places.append(None if joined == ".." or joined.startswith("../") else joined)
    verdicts: list[tuple[_Kind, CitationProblem, str] | None] = []
    for place in places:
        if place is None:
            verdicts.append(None)
            continue
        # A file appearing or going changes its folder's mtime.
        found.stamps.add(os.path.dirname(os.path.join(found.root, place)))
        kind, problem, detail = verdict = _inspect(found.root, place)
        verdicts.append(verdict)
        if kind == "file":
            found.cite(agent, [place])
            if PurePosixPath(place).name == SKILL_FILE:
                skill = (found.root / place).parent
                found.cite(agent, _walk(found.root, skill, found.refuse, found.stamps))
            return
        if kind == "refused":
            unusable(place, problem, detail)
            return
    if reference.tentative:
        return  # names no file: prose, not a citation
    rel, last = places[primary], verdicts[primary]
    if rel is None or last is None:
        unusable(written, "outside_root", "cited path escapes the workspace root")
    elif last[0] == "error":
        unusable(rel, last[1], last[2])
    else:
        unusable(rel, "missing")


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
