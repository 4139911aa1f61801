"""`bekb init`: each layout of agents and skills is recognised, and the bekb.toml it writes
loads and selects what the layout holds."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from cli_support import CliResult, hashing_app, invoke
from conftest import SHARED_CORPUS, SPECIALIST

from bekb import Settings, UsageError
from bekb.corpus.layouts import init_config, propose
from bekb.corpus.selection import select_files
from bekb.domain import Layout


def agent(name: str, body: str = "You help.") -> str:
    return f"---\nname: {name}\ndescription: The {name} agent\n---\n\n{body}\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def init(*args: object) -> CliResult:
    return invoke(hashing_app(), ["init", *args])


def loaded_selection(folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the written bekb.toml selects, loaded as bekb loads it."""
    monkeypatch.setenv("BEKB_CONFIG", str(folder / "bekb.toml"))
    settings = Settings.load()
    assert settings.root == folder.resolve()
    selection = select_files(
        settings.root,
        agent_files=settings.agent_files,
        scope=settings.scope,
        include=settings.include,
        exclude=settings.exclude,
    )
    return list(selection.files)


@pytest.fixture
def claude_project(tmp_path: Path) -> Path:
    """A project as Claude Code lays it out: agents and skills under `.claude/`."""
    return write(
        tmp_path / "project",
        {
            ".claude/agents/reviewer.md": agent(
                "reviewer", "Follow [the guide](../../docs/api.md)."
            ),
            ".claude/agents/db.md": agent("db"),
            ".claude/agents/README.md": "# Not an agent: no frontmatter\n",
            ".claude/skills/sagas/SKILL.md": "# Sagas\n\nCompensate each step.\n",
            ".claude/skills/sagas/references/timeouts.md": "# Timeouts\n",
            ".claude/skills/sagas/scripts/check.py": "print('ok')\n",
            ".claude/skills/sagas/diagram.png": "not text",
            ".claude/skills/caching/SKILL.md": "# Caching\n",
            "docs/api.md": "# API guide\n",
            "src/app.py": "app = None\n",
        },
    )


def test_a_claude_project_names_its_agents_and_includes_its_skill_folders(
    claude_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = init_config(claude_project)

    assert report.layouts == (
        Layout("claude", (".claude/agents/*.md", ".claude/skills/*/SKILL.md"), 2, 2),
    )
    assert (report.agent_files, report.include, report.scope) == (
        (".claude/agents/db.md", ".claude/agents/reviewer.md"),
        (".claude/skills/*/SKILL.md",),
        "cited",
    )
    assert loaded_selection(claude_project, monkeypatch) == [
        ".claude/skills/caching/SKILL.md",
        ".claude/skills/sagas/SKILL.md",
        ".claude/skills/sagas/references/timeouts.md",
        ".claude/skills/sagas/scripts/check.py",
        "docs/api.md",
    ]
    assert report.files == 5


def test_the_written_file_is_commented_toml_with_the_chosen_settings(claude_project: Path) -> None:
    report = init_config(claude_project)

    text = report.config.read_text()
    assert tomllib.loads(text) == {
        "root": ".",
        "index_dir": ".bekb/index",
        "agent_files": [".claude/agents/db.md", ".claude/agents/reviewer.md"],
        "include": [".claude/skills/*/SKILL.md"],
    }
    assert "# exclude = " in text and '# scope = "workspace"' in text


def test_a_claude_folder_itself_is_recognised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dot_claude = write(
        tmp_path / ".claude",
        {
            "CLAUDE.md": "# My memory\n",
            "agents/helper.md": agent("helper"),
            "skills/queues/SKILL.md": "# Queues\n",
            "skills/queues/references/dlq.md": "# Dead letters\n",
        },
    )

    report = init_config(dot_claude)

    assert report.layouts == (Layout("claude", ("agents/*.md", "skills/*/SKILL.md"), 1, 1),)
    assert loaded_selection(dot_claude, monkeypatch) == [
        "skills/queues/SKILL.md",
        "skills/queues/references/dlq.md",
    ]


def test_a_folder_of_agent_files_names_each_and_indexes_what_they_cite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(
        tmp_path / "my-agents",
        {
            "api.md": agent("api", "Read `notes/rest.md` and [errors](notes/errors.md#codes)."),
            "db.md": agent("db", "See @notes/indexes.md."),
            "README.md": "# These are my agents\n",
            "notes/rest.md": "# REST\n",
            "notes/errors.md": "# Errors\n",
            "notes/indexes.md": "# Indexes\n",
        },
    )

    report = init_config(folder)

    assert report.layouts == (Layout("agents", ("*.md",), 2, 0),)
    assert (report.agent_files, report.include) == (("api.md", "db.md"), ())
    assert loaded_selection(folder, monkeypatch) == [
        "notes/errors.md",
        "notes/indexes.md",
        "notes/rest.md",
    ]


def test_plugin_folders_name_their_agents_and_include_their_skills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write(
        tmp_path / "marketplace",
        {
            "README.md": "# Plugins\n",
            "plugins/backend/agents/architect.md": agent("architect"),
            "plugins/backend/skills/sagas/SKILL.md": "# Sagas\n",
            "plugins/backend/skills/sagas/references/outbox.md": "# Outbox\n",
            "plugins/web/agents/frontend.md": agent("frontend"),
            "plugins/web/commands/build.md": "# Not an agent\n",
        },
    )

    report = init_config(repo)

    assert report.layouts == (
        Layout("plugins", ("plugins/*/agents/*.md", "plugins/*/skills/*/SKILL.md"), 2, 1),
    )
    assert report.agent_files == (
        "plugins/backend/agents/architect.md",
        "plugins/web/agents/frontend.md",
    )
    assert loaded_selection(repo, monkeypatch) == [
        "plugins/backend/skills/sagas/SKILL.md",
        "plugins/backend/skills/sagas/references/outbox.md",
    ]


def test_a_root_of_repositories_with_a_specialist_is_indexed_as_it_cites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write(
        tmp_path / "workspace",
        {
            "specialists/backend.md": agent(
                "backend", "Sagas: `skills-repo/skills/sagas/SKILL.md`"
            ),
            "skills-repo/README.md": "# Skills\n",
            "skills-repo/skills/sagas/SKILL.md": "# Sagas\n",
            "skills-repo/skills/other/SKILL.md": "# Other\n",
            "agents-repo/plugins/x/agents/helper.md": agent("helper"),
        },
    )

    report = init_config(root)

    assert report.layouts == (Layout("workspace", ("specialists/*.md",), 2, 2),)
    assert (report.agent_files, report.scope) == (("specialists/backend.md",), "cited")
    assert loaded_selection(root, monkeypatch) == ["skills-repo/skills/sagas/SKILL.md"]


def test_a_root_of_repositories_without_a_specialist_is_indexed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write(
        tmp_path / "workspace",
        {
            "one/skills/sagas/SKILL.md": "# Sagas\n",
            "two/src/agents/helper.md": agent("helper"),
            "two/src/agents/other.md": agent("other"),
        },
    )

    report = init_config(root)

    assert (report.agent_files, report.scope) == (("two/src/agents/helper.md",), "workspace")
    assert loaded_selection(root, monkeypatch) == [
        "one/skills/sagas/SKILL.md",
        "two/src/agents/other.md",
    ]


@pytest.mark.skipif(not (SHARED_CORPUS / SPECIALIST).exists(), reason="no ../shared/corpus")
def test_the_shared_corpus_is_proposed_as_the_default_settings() -> None:
    proposal = propose(SHARED_CORPUS)

    assert (proposal.agent_files, proposal.include, proposal.scope) == ((SPECIALIST,), (), "cited")
    assert [layout.kind for layout in proposal.layouts] == ["workspace"]


def test_a_folder_with_nothing_recognisable_is_a_usage_error(tmp_path: Path) -> None:
    write(tmp_path / "plain", {"notes.md": "# Notes\n"})

    with pytest.raises(UsageError, match="found no agent file or skill in"):
        init_config(tmp_path / "plain")
    assert not (tmp_path / "plain" / "bekb.toml").exists()


# The command line


def test_init_prints_what_it_found_and_the_next_commands(claude_project: Path) -> None:
    done = init(claude_project)

    assert (done.code, done.err) == (0, "")
    assert done.out.splitlines() == [
        f"found in {claude_project}:",
        "  claude    .claude/agents/*.md, .claude/skills/*/SKILL.md (agent files 2, skills 2)",
        f"wrote {claude_project / 'bekb.toml'}:",
        "  persona   .claude/agents/db.md",
        "  agents    2 (what they cite is indexed)",
        "  include   .claude/skills/*/SKILL.md",
        "  index     .bekb/index",
        "selected: files 5, unresolved citations 0",
        "next:",
        "  cd project",
        "  bekb index",
        '  bekb ask "your question"',
    ]


def test_init_in_the_folder_itself_needs_no_cd(
    claude_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(claude_project)

    done = init("--json")

    assert json.loads(done.out)["next"] == ["bekb index", 'bekb ask "your question"']


def test_init_json_reports_layouts_settings_and_selection(claude_project: Path) -> None:
    done = init(claude_project, "--json")

    assert done.code == 0
    assert json.loads(done.out) == {
        "folder": str(claude_project),
        "config": str(claude_project / "bekb.toml"),
        "layouts": [
            {
                "kind": "claude",
                "where": [".claude/agents/*.md", ".claude/skills/*/SKILL.md"],
                "agent_files": 2,
                "skills": 2,
            }
        ],
        "agent_files": [".claude/agents/db.md", ".claude/agents/reviewer.md"],
        "include": [".claude/skills/*/SKILL.md"],
        "scope": "cited",
        "index_dir": ".bekb/index",
        "files": 5,
        "unresolved_citations": [],
        "next": ["cd project", "bekb index", 'bekb ask "your question"'],
    }


def test_init_keeps_an_existing_bekb_toml_unless_forced(claude_project: Path) -> None:
    (claude_project / "bekb.toml").write_text("k = 3\n")

    refused = init(claude_project)
    assert (refused.code, refused.out) == (2, "")
    assert (
        refused.err == f"error: {claude_project / 'bekb.toml'} exists: pass --force to replace it\n"
    )
    assert (claude_project / "bekb.toml").read_text() == "k = 3\n"

    forced = init(claude_project, "--force")
    assert forced.code == 0
    assert "agent_files" in (claude_project / "bekb.toml").read_text()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        pytest.param("missing", "does not exist", id="missing"),
        pytest.param("file.md", "is not a directory", id="a-file"),
        pytest.param("empty", "found no agent file or skill", id="nothing-recognised"),
    ],
)
def test_init_on_a_folder_it_cannot_use_exits_2_with_one_line(
    tmp_path: Path, where: str, message: str
) -> None:
    (tmp_path / "file.md").write_text("# A file\n")
    (tmp_path / "empty").mkdir()

    done = init(tmp_path / where)

    assert done.code == 2
    assert done.err.startswith("error: ") and message in done.err
    assert done.err.count("\n") == 1


def test_init_warns_when_its_settings_select_nothing(tmp_path: Path) -> None:
    folder = write(tmp_path / "agents-only", {"api.md": agent("api", "No citations.")})

    done = init(folder)

    assert done.code == 0
    assert "selected: files 0, unresolved citations 0" in done.out
    assert done.err.startswith("warning: nothing to index yet")


def test_an_agent_under_claude_agents_is_a_persona_by_name(claude_project: Path) -> None:
    from bekb.corpus.agents import find_agent_files

    assert find_agent_files(claude_project) == {
        "db": ".claude/agents/db.md",
        "reviewer": ".claude/agents/reviewer.md",
    }
