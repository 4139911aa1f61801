"""A knowledge base reuses its file selection until a folder it read (or an agent file) changes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import TINY_AGENT

from bekb import KnowledgeBase
from bekb.corpus.selection import select_files


def _age(root: Path, seconds: float = 60) -> None:
    """Move every mtime under `root` into the past, as on a workspace nobody is editing."""
    past = time.time() - seconds
    for path in [root, *root.rglob("*")]:
        os.utime(path, (past, past))


@pytest.fixture
def kb(tiny_root: Path, tmp_path: Path) -> KnowledgeBase:
    _age(tiny_root)
    return KnowledgeBase.open(
        root=tiny_root, index_dir=tmp_path / "index", agent_files=(TINY_AGENT,)
    )


def test_an_unchanged_workspace_reuses_the_selection(kb: KnowledgeBase) -> None:
    first = kb.selection()
    assert first.still_current()
    assert kb.selection() is first


def test_a_new_file_in_a_cited_skill_folder_is_selected(kb: KnowledgeBase, tiny_root: Path) -> None:
    kb.selection()
    (tiny_root / "alpha/skills/sagas/references/timeouts.md").write_text("# Timeouts\n")

    assert "alpha/skills/sagas/references/timeouts.md" in kb.selection().files


def test_a_deleted_file_leaves_the_selection(kb: KnowledgeBase, tiny_root: Path) -> None:
    kb.selection()
    (tiny_root / "alpha/skills/sagas/references/details.md").unlink()

    assert "alpha/skills/sagas/references/details.md" not in kb.selection().files


def test_an_unresolved_citation_resolves_once_its_file_appears(
    kb: KnowledgeBase, tiny_root: Path
) -> None:
    assert "gamma/src/stream.rs" in kb.selection().unresolved
    (tiny_root / "gamma/src").mkdir(parents=True)
    (tiny_root / "gamma/src/stream.rs").write_text("fn main() {}\n")

    selection = kb.selection()

    assert "gamma/src/stream.rs" in selection.files
    assert "gamma/src/stream.rs" not in selection.unresolved


def test_an_edited_agent_file_is_read_again(kb: KnowledgeBase, tiny_root: Path) -> None:
    kb.selection()
    with (tiny_root / TINY_AGENT).open("a", encoding="utf-8") as agent:
        agent.write("- more: `alpha/skills/unrelated/SKILL.md`\n")

    assert "alpha/skills/unrelated/SKILL.md" in kb.selection().files


def test_a_new_skill_anywhere_joins_the_workspace_scope(tiny_root: Path) -> None:
    _age(tiny_root)
    first = select_files(tiny_root, agent_files=[TINY_AGENT], scope="workspace")
    assert first.still_current()
    (tiny_root / "beta/skills/queues").mkdir(parents=True)
    (tiny_root / "beta/skills/queues/SKILL.md").write_text("# Queues\n")

    assert not first.still_current()
    again = select_files(tiny_root, agent_files=[TINY_AGENT], scope="workspace")
    assert "beta/skills/queues/SKILL.md" in again.files


def test_a_selection_read_in_the_same_moment_as_a_change_is_not_reused(tiny_root: Path) -> None:
    (tiny_root / "alpha/skills/sagas/new.md").write_text("# New\n")  # mtime: now

    assert not select_files(tiny_root, agent_files=[TINY_AGENT]).still_current()


def test_a_selection_from_include_globs_is_never_reused(tiny_root: Path) -> None:
    _age(tiny_root)
    selection = select_files(tiny_root, agent_files=[TINY_AGENT], include=["beta/**/*.md"])

    assert not selection.still_current()
