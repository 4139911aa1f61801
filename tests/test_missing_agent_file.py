"""A configured agent file renamed or deleted after a build: the index stays readable,
`status` says what is wrong, and a build refuses rather than dropping what the file cited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import hashing_app, invoke
from conftest import TINY_AGENT

from bekb import KnowledgeBase
from bekb.corpus.selection import select_files
from bekb.domain import SkippedFile
from bekb.errors import ConfigError

MISSING = SkippedFile(
    TINY_AGENT, "agent file cannot be read: unreadable (No such file or directory)"
)


@pytest.fixture
def renamed(tiny_kb: KnowledgeBase, tiny_root: Path) -> KnowledgeBase:
    """The tiny corpus indexed, then its one configured agent file renamed."""
    tiny_kb.index()
    agent = tiny_root / TINY_AGENT
    agent.rename(agent.with_name("renamed.md"))
    return tiny_kb


def test_the_selection_records_an_unreadable_agent_file_and_goes_on(tiny_root: Path) -> None:
    (tiny_root / TINY_AGENT).unlink()

    selection = select_files(tiny_root, agent_files=[TINY_AGENT], include=["beta/docs/*.md"])

    assert selection.unusable_agents == (MISSING,)
    assert MISSING in selection.refused
    assert selection.files == ("beta/docs/auth.md",)


def test_a_build_refuses_and_keeps_the_index(renamed: KnowledgeBase) -> None:
    before = renamed.status()

    with pytest.raises(ConfigError, match=rf"{TINY_AGENT} \(agent_files\) cannot be read"):
        renamed.index()

    after = renamed.status()
    assert (after.files, after.chunks) == (before.files, before.chunks) != (0, 0)


def test_the_index_is_still_searched_and_status_names_the_file(renamed: KnowledgeBase) -> None:
    [hit] = renamed.search("cache stampede", k=1)

    assert hit.path == "alpha/skills/caching/SKILL.md"
    assert renamed.status().unusable_agents == (MISSING,)


def test_the_default_persona_error_says_what_to_do(renamed: KnowledgeBase) -> None:
    with pytest.raises(ConfigError, match=r"restore it, change agent_files in bekb\.toml or pass"):
        renamed.persona()


def test_the_cli_reports_the_file_once_per_command(renamed: KnowledgeBase, tiny_root: Path) -> None:
    app = hashing_app()
    where = ["--root", tiny_root, "--index-dir", renamed.settings.index_dir]
    env = {"BEKB_AGENT_FILES": TINY_AGENT}

    status = invoke(app, [*where, "status"], env=env)
    as_json = invoke(app, [*where, "status", "--json"], env=env)
    built = invoke(app, [*where, "index"], env=env)
    searched = invoke(app, [*where, "search", "cache stampede", "--json"], env=env)
    asked = invoke(app, [*where, "ask", "cache stampede", "--no-llm"], env=env)

    assert status.code == 0 and f"problem     {TINY_AGENT} (agent_files)" in status.out
    assert json.loads(as_json.out)["unusable_agents"] == [
        {"path": MISSING.path, "reason": MISSING.reason}
    ]
    assert built.code == 2 and built.err.count("\n") == 1
    assert "the index was left as it is" in built.err
    assert searched.code == 0 and json.loads(searched.out)["hits"]
    assert asked.code == 2 and "pass --as NAME" in asked.err
