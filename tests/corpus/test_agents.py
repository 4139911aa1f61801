"""Agent files: which files are agents, finding them by name, stem or path."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FASTAPI

from bekb.corpus.agents import find_agent_files, is_agent_path, load_agent_file
from bekb.errors import CorpusError, UsageError

REAL_CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus"


def agent(name: str, body: str = "Body.") -> str:
    return f"---\nname: {name}\ndescription: The {name} agent\n---\n\n{body}\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    files = {
        "specialists/backend-specialist.md": agent("backend-specialist", "You are a backend dev."),
        "agents/plugins/api/agents/fastapi-pro.md": FASTAPI,
        "agents/plugins/py/agents/fastapi-pro.md": agent("py-fastapi-pro"),
        "agents/plugins/py/agents/also-py.md": agent("py-fastapi-pro"),
        "harness/src/harness/agents/configs/dev-go-expert.md": agent("go-expert"),
        # Not agent files: no frontmatter name, outside an agents folder, hidden, not Markdown.
        "agents/plugins/api/agents/README.md": "# About these agents\n",
        "agents/plugins/api/agents/broken.md": "---\nname: [unclosed\n---\nBody\n",
        "agents/plugins/api/skills/saga/SKILL.md": agent("saga"),
        "agents/docs/guide.md": agent("guide"),
        "agents/.git/agents/hidden.md": agent("hidden"),
        "agents/plugins/api/agents/notes.txt": agent("notes"),
    }
    for rel, text in files.items():
        path = tmp_path / "root" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path / "root"


def test_find_agent_files_maps_names_to_paths_of_agent_files_only(root):
    assert find_agent_files(root) == {
        "api-fastapi-pro": "agents/plugins/api/agents/fastapi-pro.md",
        "go-expert": "harness/src/harness/agents/configs/dev-go-expert.md",
        "py-fastapi-pro": "agents/plugins/py/agents/also-py.md",
        "backend-specialist": "specialists/backend-specialist.md",
    }


def test_find_agent_files_refuses_a_missing_root(tmp_path):
    with pytest.raises(CorpusError, match="is not a directory"):
        find_agent_files(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("query", "path"),
    [
        pytest.param("go-expert", "harness/src/harness/agents/configs/dev-go-expert.md", id="name"),
        pytest.param(
            "dev-go-expert", "harness/src/harness/agents/configs/dev-go-expert.md", id="stem"
        ),
        pytest.param("fastapi-pro", "agents/plugins/api/agents/fastapi-pro.md", id="shared-stem"),
        pytest.param(
            "agents/plugins/py/agents/fastapi-pro.md",
            "agents/plugins/py/agents/fastapi-pro.md",
            id="path",
        ),
        pytest.param(
            "agents/plugins/api/skills/saga/SKILL.md",
            "agents/plugins/api/skills/saga/SKILL.md",
            id="path-to-any-markdown",
        ),
    ],
)
def test_load_agent_file_by_name_stem_or_path(root, query, path):
    assert load_agent_file(root, query) == (path, (root / path).read_text(encoding="utf-8"))


def test_load_agent_file_unknown_name_lists_the_closest_names(root):
    with pytest.raises(UsageError) as caught:
        load_agent_file(root, "fastapi")

    assert str(caught.value) == (
        "no persona named 'fastapi' (closest: fastapi-pro, py-fastapi-pro, api-fastapi-pro); "
        "4 available, pass a name or a path relative to the root"
    )


def test_load_agent_file_missing_path_is_a_usage_error(root):
    with pytest.raises(UsageError, match=r"no persona named 'agents/go-exprt\.md' \(closest"):
        load_agent_file(root, "agents/go-exprt.md")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("../outside.md", id="dot-dot"),
        pytest.param("specialists/../../outside.md", id="inner-dot-dot"),
        pytest.param("link/outside.md", id="symlink"),
    ],
)
def test_load_agent_file_refuses_paths_escaping_the_root(root, query):
    (root.parent / "outside.md").write_text(agent("outside"), encoding="utf-8")
    (root / "link").symlink_to(root.parent, target_is_directory=True)

    with pytest.raises(CorpusError, match="outside the root"):
        load_agent_file(root, query)


def test_load_agent_file_refuses_an_absolute_path_outside_the_root(root):
    outside = root.parent / "outside.md"
    outside.write_text(agent("outside"), encoding="utf-8")

    with pytest.raises(CorpusError, match="outside the root"):
        load_agent_file(root, str(outside))


@pytest.mark.skipif(not REAL_CORPUS.is_dir(), reason="shared corpus not present")
def test_real_corpus_agent_files_include_the_specialist_and_fastapi_pro():
    agents = find_agent_files(REAL_CORPUS)
    path, text = load_agent_file(REAL_CORPUS, "fastapi-pro")

    assert agents["backend-specialist"] == "specialists/backend-specialist.md"
    assert agents["go-expert"] == "casdk-harness/src/harness/agents/configs/dev-go-expert.md"
    assert agents["api-scaffolding-fastapi-pro"] == path
    assert path == "agents/plugins/api-scaffolding/agents/fastapi-pro.md"
    assert "You are a FastAPI expert" in text


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        pytest.param("specialists/backend-specialist.md", True, id="specialists"),
        pytest.param("agents/plugins/api/agents/fastapi-pro.md", True, id="plugin-agents"),
        pytest.param("harness/src/agents/configs/go.md", True, id="nested-agents"),
        pytest.param("agents/docs/guide.md", False, id="repository-named-agents"),
        pytest.param("agents/plugins/api/agents/notes.txt", False, id="not-markdown"),
        pytest.param("agents/.git/agents/hidden.md", False, id="hidden-folder"),
        pytest.param(".claude/agents/reviewer.md", True, id="claude-project-agents"),
        pytest.param("app/.claude/agents/reviewer.md", True, id="nested-claude-agents"),
        pytest.param(".claude/skills/agents/x.md", False, id="claude-not-agents"),
        pytest.param(".cache/.claude/agents/x.md", False, id="claude-inside-hidden"),
        pytest.param("web/node_modules/agents/x.md", False, id="node-modules"),
        pytest.param("agents/plugins/api/skills/saga/SKILL.md", False, id="skill"),
    ],
)
def test_is_agent_path_is_the_one_rule_for_agent_files(rel, expected):
    assert is_agent_path(rel) is expected


def test_an_agent_file_symlinked_out_of_the_root_is_never_read(root, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("---\nname: evil\n---\nThe secret.\n", encoding="utf-8")
    (root / "specialists" / "evil.md").symlink_to(secret)

    assert "evil" not in find_agent_files(root)
    with pytest.raises(UsageError, match="no persona named 'evil'"):
        load_agent_file(root, "evil")
