"""The layouts `bekb init` recognises in a folder (a folder of agent files, `.claude/`,
plugins, a root of repositories) and the commented bekb.toml it writes for them."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from bekb.corpus.agents import SPECIALISTS_DIR, agent_name, find_agent_files, skipped_dir
from bekb.corpus.selection import SKILL_FILE, Selection, select_files
from bekb.domain import InitReport, Layout, LayoutKind
from bekb.errors import CorpusError, UsageError
from bekb.files import atomic_write, inside, is_regular_file

CONFIG_FILE = "bekb.toml"
# Where init puts the index: hidden, so no selection ever reads it, and one .gitignore line.
INDEX_DIR = ".bekb/index"
# Where each layout keeps agent files and skills, as globs relative to the folder: a
# `.claude` folder itself (or a repository laid out like one), a project's `.claude/`, plugins.
PLACES: tuple[tuple[LayoutKind, str, str], ...] = (
    ("claude", "agents/*.md", f"skills/*/{SKILL_FILE}"),
    ("claude", ".claude/agents/*.md", f".claude/skills/*/{SKILL_FILE}"),
    ("plugins", "plugins/*/agents/*.md", f"plugins/*/skills/*/{SKILL_FILE}"),
)
AGENTS_HERE = "*.md"  # a folder of agent files (~/.claude/agents, say)
QUESTION = '"your question"'


@dataclass(frozen=True)
class Proposal:
    """The settings `bekb init` proposes for a folder, and the layouts they come from."""

    layouts: tuple[Layout, ...]
    agent_files: tuple[str, ...]
    include: tuple[str, ...] = ()
    scope: Literal["cited", "workspace"] = "cited"


def propose(folder: Path) -> Proposal:
    """The layouts found in `folder` and the settings that index them: agent files by path,
    skills by include glob; a root of repositories is indexed as its specialists cite it,
    or as a workspace when it has none.

    Raises:
        UsageError: `folder` is not a directory, or holds no agent file or skill.
    """
    root = _folder(folder)
    layouts: list[Layout] = []
    agents: list[str] = []
    include: list[str] = []
    here = _agent_files(root, AGENTS_HERE)
    if here:
        layouts.append(Layout("agents", (AGENTS_HERE,), len(here), 0))
        agents += here
    for kind, agent_glob, skill_glob in PLACES:
        found = _agent_files(root, agent_glob)
        skills = _matches(root, skill_glob)
        if found or skills:
            where = tuple(g for g, hits in ((agent_glob, found), (skill_glob, skills)) if hits)
            layouts.append(Layout(kind, where, len(found), len(skills)))
            agents += found
            include += [skill_glob] if skills else []
    if layouts:
        return Proposal(tuple(layouts), tuple(agents), tuple(include))
    return _workspace(root)


def init_config(folder: Path, *, force: bool = False, cwd: Path | None = None) -> InitReport:
    """Write `folder/bekb.toml` for the layouts found there (see `propose`) and report what
    it selects and which commands come next (run from `cwd`, default the working directory).

    Raises:
        UsageError: a bekb.toml is there already (pass `force` to replace it), or the folder
            holds nothing `propose` recognises.
        CorpusError: the file cannot be written.
    """
    root = _folder(folder)
    config = root / CONFIG_FILE
    if (config.exists() or config.is_symlink()) and not force:
        raise UsageError(f"{config} exists: pass --force to replace it")
    proposal = propose(root)
    selection = select_files(
        root, agent_files=proposal.agent_files, scope=proposal.scope, include=proposal.include
    )
    try:
        atomic_write(config, config_text(root, proposal, selection))
    except OSError as exc:
        raise CorpusError(f"cannot write {config}: {exc.strerror or exc}") from exc
    here = (cwd or Path.cwd()).resolve()
    go = () if here == root else (f"cd {shlex.quote(os.path.relpath(root, here))}",)
    return InitReport(
        folder=root,
        config=config,
        layouts=proposal.layouts,
        agent_files=proposal.agent_files,
        include=proposal.include,
        scope=proposal.scope,
        index_dir=INDEX_DIR,
        files=len(selection.files),
        unresolved_citations=selection.unresolved_citations,
        next_commands=(
            *go,
            "bekb index",
            f"bekb {'ask' if proposal.agent_files else 'search'} {QUESTION}",
        ),
    )


def config_text(root: Path, proposal: Proposal, selection: Selection) -> str:
    """The commented bekb.toml for `proposal` (`selection`: what it selects)."""
    found = "; ".join(_found(layout) for layout in proposal.layouts)
    lines = [
        f"# bekb.toml written by `bekb init` for {_toml(str(root))}.",
        f"# Found: {found}.",
        f"# Files these settings selected when written: {len(selection.files)}. "
        "`bekb corpus status` lists",
        "# what they select now, and every citation that names no usable file.",
        "# Relative paths are relative to this file's folder; agent files and globs to `root`.",
        "# Every setting: docs/configuration.md.",
        "",
        "# The folder holding the agents and skills.",
        'root = "."',
        "",
        "# Where the index is built (hidden, so it is never indexed; add .bekb/ to .gitignore).",
        f"index_dir = {_toml(INDEX_DIR)}",
        "",
    ]
    if proposal.scope == "workspace":
        lines += [
            "# No specialist cites the documents here: index every skill folder and agent",
            "# file under the root.",
            'scope = "workspace"',
            "",
        ]
    lines += [
        "# Agent files: what they cite is indexed (backtick paths, Markdown links, @path",
        "# mentions, bare relative paths). The first is the persona `bekb ask` answers as;",
        "# `bekb ask --as PATH` picks another.",
    ]
    if not proposal.agent_files:
        lines += ["# None was found: `bekb search` works, `bekb ask` needs one named here."]
    lines += [*_array("agent_files", proposal.agent_files), ""]
    if proposal.include:
        lines += [
            "# Files indexed besides the citations: a SKILL.md brings its whole skill folder.",
            *_array("include", proposal.include),
            "",
        ]
    else:
        lines += ["# Files indexed besides the citations (a SKILL.md brings its folder):", ""]
        lines += ['# include = ["docs/**/*.md"]', ""]
    lines += ["# Files never indexed:", '# exclude = ["*/drafts/*"]']
    if proposal.scope == "cited":
        lines += ["", "# Every skill folder and agent file under the root instead:"]
        lines += ['# scope = "workspace"']
    return "\n".join(lines) + "\n"


def layout_counts(layout: Layout) -> str:
    """What a layout holds, as `bekb init` says it: `agent files 2, skills 3`."""
    counts = [("agent files", layout.agent_files), ("skills", layout.skills)]
    return ", ".join(f"{what} {n}" for what, n in counts if n)


def _found(layout: Layout) -> str:
    return f"{layout.kind} ({', '.join(layout.where)}: {layout_counts(layout)})"


def _array(name: str, values: Iterable[str]) -> list[str]:
    items = [f"    {_toml(value)}," for value in values]
    return [f"{name} = [", *items, "]"] if items else [f"{name} = []"]


def _toml(text: str) -> str:
    # A JSON string is a TOML basic string: the same quotes and escapes.
    return json.dumps(text, ensure_ascii=False)


def _folder(folder: Path) -> Path:
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a directory"
        raise UsageError(f"{folder} {what}: pass the folder holding your agents and skills")
    return folder.resolve()


def _agent_files(root: Path, pattern: str) -> list[str]:
    """Agent files (Markdown with a frontmatter `name`) matching `pattern`, sorted."""
    return [rel for rel in _matches(root, pattern) if agent_name(root, rel) is not None]


def _matches(root: Path, pattern: str) -> list[str]:
    """Regular files inside `root` matching `pattern` (never a hidden file), sorted."""
    found = []
    for path in root.glob(pattern):
        rel = path.relative_to(root).as_posix()
        if path.name.startswith(".") or inside(root, rel) is None:
            continue
        if is_regular_file(path):
            found.append(rel)
    return sorted(found)


def _workspace(root: Path) -> Proposal:
    agents = sorted(set(find_agent_files(root).values()))
    skills = _count_skills(root)
    if not agents and not skills:
        looked = ", ".join([AGENTS_HERE, *(g for _, a, s in PLACES for g in (a, s))])
        raise UsageError(
            f"found no agent file or skill in {root} (looked for {looked}, and agent files "
            "and skills anywhere below): pass the folder holding them"
        )
    specialists = [p for p in agents if PurePosixPath(p).parts[0] == SPECIALISTS_DIR]
    if specialists:
        layout = Layout("workspace", ("specialists/*.md",), len(agents), skills)
        return Proposal((layout,), tuple(specialists))
    layout = Layout("workspace", ("**/agents/*.md", f"**/{SKILL_FILE}"), len(agents), skills)
    return Proposal((layout,), tuple(agents[:1]), scope="workspace")


def _count_skills(root: Path) -> int:
    count = 0
    for _, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not skipped_dir(d)]
        count += SKILL_FILE in filenames
    return count
