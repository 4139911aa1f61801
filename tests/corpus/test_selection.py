"""The file set: agent-file citations, skill folders, globs, and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import SPECIALIST, TINY_AGENT

from bekb.corpus.selection import INDEXABLE_SUFFIXES, SKILL_FILE, cited_paths, select_files
from bekb.domain import SkippedFile
from bekb.errors import ConfigError

TINY_CITED = (
    "alpha/skills/caching/SKILL.md",
    "alpha/skills/sagas/SKILL.md",
    "alpha/skills/sagas/references/details.md",
    "beta/docs/auth.md",
    "beta/src/server.py",
)
ESCAPING = SkippedFile("../outside/secrets.md", "cited path escapes the workspace root")


def _cite(root: Path, *paths: str) -> None:
    """Append citations of `paths` to the tiny agent file."""
    with (root / TINY_AGENT).open("a", encoding="utf-8") as agent:
        agent.writelines(f"- `{path}`\n" for path in paths)


# The tiny fixture corpus


def test_cited_scope_selects_the_cited_files_and_their_skill_folders(tiny_root: Path) -> None:
    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.files == TINY_CITED


def test_citation_that_does_not_resolve_is_reported_as_unresolved(tiny_root: Path) -> None:
    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.unresolved == ("gamma/src/stream.rs",)


def test_citation_escaping_the_root_is_refused(tiny_root: Path) -> None:
    (tiny_root.parent / "outside").mkdir()
    (tiny_root.parent / "outside" / "secrets.md").write_text("# secret\n")

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.refused == (ESCAPING,)
    assert "../outside/secrets.md" not in selection.files


def test_selection_reports_the_resolved_root_and_its_agent_files(tiny_root: Path) -> None:
    selection = select_files(tiny_root / "alpha" / "..", agent_files=[TINY_AGENT])

    assert (selection.root, selection.agent_files) == (tiny_root.resolve(), (TINY_AGENT,))


def test_agent_file_itself_is_not_selected_even_when_cited(tiny_root: Path) -> None:
    _cite(tiny_root, TINY_AGENT)

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.files == TINY_CITED


def test_workspace_scope_adds_every_skill_folder_and_agent_file(tiny_root: Path) -> None:
    selection = select_files(tiny_root, agent_files=[TINY_AGENT], scope="workspace")

    assert selection.files == (
        "alpha/agents/fastapi-pro.md",
        "alpha/skills/caching/SKILL.md",
        "alpha/skills/sagas/SKILL.md",
        "alpha/skills/sagas/references/details.md",
        "alpha/skills/unrelated/SKILL.md",
        "beta/docs/auth.md",
        "beta/src/server.py",
    )


def test_a_selection_knows_which_of_its_files_the_agent_files_cite(tiny_root: Path) -> None:
    workspace = select_files(tiny_root, agent_files=[TINY_AGENT], scope="workspace")
    globbed = select_files(
        tiny_root,
        agent_files=[TINY_AGENT],
        include=["alpha/skills/unrelated/**/*.md"],
        exclude=["beta/src/*"],
    )

    assert workspace.cited == frozenset(TINY_CITED)
    assert globbed.cited == frozenset(TINY_CITED[:4])


def test_hidden_and_unindexable_files_in_a_skill_folder_are_skipped(tiny_root: Path) -> None:
    folder = tiny_root / "alpha" / "skills" / "sagas"
    (folder / "diagram.png").write_bytes(b"\x89PNG")
    (folder / ".notes.md").write_text("# hidden\n")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "page.md").write_text("# cached\n")
    (folder / "templates").mkdir()
    (folder / "templates" / "saga.yaml").write_text("steps: []\n")

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.files == (
        *TINY_CITED[:3],
        "alpha/skills/sagas/templates/saga.yaml",
        *TINY_CITED[3:],
    )


def test_path_with_spaces_and_unicode_in_a_cited_skill_folder_is_selected(
    tiny_root: Path,
) -> None:
    odd = tiny_root / "alpha" / "skills" / "sagas" / "références" / "Saga Überblick 日本.md"
    odd.parent.mkdir()
    odd.write_text("# Überblick\n\nDie Saga im Überblick.\n", encoding="utf-8")

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.files == (
        *TINY_CITED[:3],
        "alpha/skills/sagas/références/Saga Überblick 日本.md",
        *TINY_CITED[3:],
    )


def test_symlink_in_a_skill_folder_pointing_outside_the_root_is_refused(tiny_root: Path) -> None:
    secret = tiny_root.parent / "secret.md"
    secret.write_text("# secret\n")
    (tiny_root / "alpha" / "skills" / "sagas" / "leak.md").symlink_to(secret)

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert (selection.files, selection.refused) == (
        TINY_CITED,
        (
            ESCAPING,
            SkippedFile("alpha/skills/sagas/leak.md", "symlink points outside the workspace root"),
        ),
    )


def test_symlink_in_a_skill_folder_pointing_inside_the_root_is_selected(tiny_root: Path) -> None:
    target = tiny_root / "beta" / "docs" / "auth.md"
    (tiny_root / "alpha" / "skills" / "sagas" / "auth-link.md").symlink_to(target)

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.files == (
        TINY_CITED[0],
        "alpha/skills/sagas/SKILL.md",
        "alpha/skills/sagas/auth-link.md",
        *TINY_CITED[2:],
    )


def test_broken_and_looping_symlinks_are_refused_and_the_rest_selected(tiny_root: Path) -> None:
    folder = tiny_root / "alpha" / "skills" / "sagas"
    (folder / "broken.md").symlink_to(folder / "missing.md")
    (folder / "loop.md").symlink_to(folder / "loop.md")

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert (selection.files, selection.refused) == (
        TINY_CITED,
        (
            ESCAPING,
            SkippedFile("alpha/skills/sagas/broken.md", "broken or looping symlink"),
            SkippedFile("alpha/skills/sagas/loop.md", "broken or looping symlink"),
        ),
    )


def test_cited_symlink_pointing_outside_the_root_is_refused(tiny_root: Path) -> None:
    secret = tiny_root.parent / "secret.md"
    secret.write_text("# secret\n")
    (tiny_root / "beta" / "docs" / "leak.md").symlink_to(secret)
    _cite(tiny_root, "beta/docs/leak.md")

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert (selection.files, selection.refused) == (
        TINY_CITED,
        (
            ESCAPING,
            SkippedFile(
                "beta/docs/leak.md", "cited path resolves outside the workspace root (symlink)"
            ),
        ),
    )


def test_cited_broken_and_looping_symlinks_are_refused(tiny_root: Path) -> None:
    docs = tiny_root / "beta" / "docs"
    (docs / "broken.md").symlink_to(docs / "missing.md")
    (docs / "loop.md").symlink_to(docs / "loop.md")
    _cite(tiny_root, "beta/docs/broken.md", "beta/docs/loop.md")

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert (selection.files, selection.unresolved, selection.refused) == (
        TINY_CITED,
        ("gamma/src/stream.rs",),
        (
            ESCAPING,
            SkippedFile("beta/docs/broken.md", "broken or looping symlink"),
            SkippedFile("beta/docs/loop.md", "broken or looping symlink"),
        ),
    )


def test_cited_folder_is_unresolved(tiny_root: Path) -> None:
    (tiny_root / "beta" / "docs.d").mkdir()
    _cite(tiny_root, "beta/docs.d")

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.unresolved == ("gamma/src/stream.rs", "beta/docs.d")


def test_spellings_of_one_cited_path_select_the_file_once(tiny_root: Path) -> None:
    _cite(tiny_root, "./beta/docs/auth.md", "beta//src/server.py", "beta/./docs/auth.md")

    selection = select_files(tiny_root, agent_files=[TINY_AGENT])

    assert selection.files == TINY_CITED


def test_missing_file_cited_by_two_agent_files_is_reported_once(tiny_root: Path) -> None:
    (tiny_root / "specialists" / "second.md").write_text(
        "Streams: `gamma/src/stream.rs`, `./gamma/src/stream.rs`, `delta/missing.md`\n"
    )

    selection = select_files(tiny_root, agent_files=[TINY_AGENT, "specialists/second.md"])

    assert selection.unresolved == ("gamma/src/stream.rs", "delta/missing.md")


def test_second_agent_file_adds_its_citations(tiny_root: Path) -> None:
    (tiny_root / "specialists" / "second.md").write_text(
        "Gardening lives in `alpha/skills/unrelated/SKILL.md`.\n"
    )

    selection = select_files(tiny_root, agent_files=[TINY_AGENT, "specialists/second.md"])

    assert selection.files == (*TINY_CITED[:3], "alpha/skills/unrelated/SKILL.md", *TINY_CITED[3:])


def test_include_glob_adds_matching_files(tiny_root: Path) -> None:
    selection = select_files(
        tiny_root, agent_files=[TINY_AGENT], include=["alpha/skills/unrelated/**/*.md"]
    )

    assert selection.files == (*TINY_CITED[:3], "alpha/skills/unrelated/SKILL.md", *TINY_CITED[3:])


def test_exclude_glob_removes_files_even_cited_ones(tiny_root: Path) -> None:
    selection = select_files(
        tiny_root, agent_files=[TINY_AGENT], exclude=["*/references/*", "beta/src/*"]
    )

    assert selection.files == (
        "alpha/skills/caching/SKILL.md",
        "alpha/skills/sagas/SKILL.md",
        "beta/docs/auth.md",
    )


def test_exclude_wins_over_include(tiny_root: Path) -> None:
    selection = select_files(
        tiny_root,
        agent_files=[TINY_AGENT],
        include=["alpha/agents/*.md"],
        exclude=["alpha/agents/*"],
    )

    assert selection.files == TINY_CITED


def test_include_glob_reaching_a_symlink_outside_the_root_refuses_it(tiny_root: Path) -> None:
    secret = tiny_root.parent / "secret.md"
    secret.write_text("# secret\n")
    (tiny_root / "beta" / "docs" / "leak.md").symlink_to(secret)

    selection = select_files(tiny_root, agent_files=[TINY_AGENT], include=["beta/docs/*.md"])

    assert (selection.files, selection.refused) == (
        TINY_CITED,
        (
            ESCAPING,
            SkippedFile("beta/docs/leak.md", "symlink points outside the workspace root"),
        ),
    )


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("/etc/*", id="absolute"),
        pytest.param("../outside/*.md", id="parent"),
        pytest.param("alpha/../../*.md", id="parent-inside"),
        pytest.param("", id="empty"),
    ],
)
def test_include_glob_not_relative_to_the_root_is_a_config_error(
    tiny_root: Path, pattern: str
) -> None:
    with pytest.raises(ConfigError, match="include glob"):
        select_files(tiny_root, agent_files=[TINY_AGENT], include=[pattern])


def test_missing_root_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        select_files(tmp_path / "nowhere", agent_files=[TINY_AGENT])


def test_root_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file.md").write_text("# not a folder\n")

    with pytest.raises(ConfigError, match="not a directory"):
        select_files(tmp_path / "file.md", agent_files=[TINY_AGENT])


def test_missing_agent_file_is_recorded_as_unusable(tiny_root: Path) -> None:
    selection = select_files(tiny_root, agent_files=["specialists/nobody.md"])

    assert [a.path for a in selection.unusable_agents] == ["specialists/nobody.md"]
    assert selection.files == ()


def test_agent_file_outside_the_root_is_refused(tiny_root: Path) -> None:
    (tiny_root.parent / "elsewhere.md").write_text("Cites `beta/docs/auth.md`.\n")

    selection = select_files(tiny_root, agent_files=["../elsewhere.md"])

    assert (selection.files, selection.refused) == (
        (),
        (SkippedFile("../elsewhere.md", "agent file is outside the workspace root"),),
    )


def test_cited_paths_are_backtick_paths_in_order_of_first_mention() -> None:
    text = (
        "Read `b/two.md`, then `a/one.py` and `b/two.md` again.\n"
        "Not paths: `pip install`, `README.md`, `a b/c.md`, ``, `folder/`.\n"
        "Relative: `../up/three.rs`\n"
    )

    assert cited_paths(text) == ["b/two.md", "a/one.py", "../up/three.rs"]


# The real workspace (/work/shared/corpus)

REAL_UNRESOLVED = (
    "claude-ui/server/routes/auth.js",
    "ralph-orchestrator/crates/ralph-adapters/src/claude_stream.rs",
    "claude-ui/server/index.js",
)


def test_real_cited_set_has_38_files(shared_corpus: Path) -> None:
    selection = select_files(shared_corpus, agent_files=[SPECIALIST])

    assert len(selection.files) == 38


def test_real_cited_set_includes_cited_files_and_their_skill_folders(
    shared_corpus: Path,
) -> None:
    selection = select_files(shared_corpus, agent_files=[SPECIALIST])

    assert {
        "agents/plugins/backend-development/skills/saga-orchestration/SKILL.md",
        "agents/plugins/backend-development/skills/saga-orchestration/references/"
        "advanced-patterns.md",
        "taches-cc-resources/skills/create-mcp-servers/workflows/create-new-server.md",
        "taches-cc-resources/skills/create-mcp-servers/templates/operations.json",
        "ralph-orchestrator/backend/ralph-web-server/package.json",
        "agents/plugins/api-scaffolding/agents/fastapi-pro.md",
    } <= set(selection.files)


def test_real_cited_set_is_exactly_the_citations_plus_skill_folders(shared_corpus: Path) -> None:
    selection = select_files(shared_corpus, agent_files=[SPECIALIST])
    cited = set(cited_paths((shared_corpus / SPECIALIST).read_text(encoding="utf-8")))
    folders = {Path(p).parent for p in cited if Path(p).name == SKILL_FILE}

    outside = [
        path
        for path in selection.files
        if path not in cited and not any(Path(path).is_relative_to(f) for f in folders)
    ]

    assert outside == []


def test_real_cited_set_leaves_out_the_agent_file(shared_corpus: Path) -> None:
    selection = select_files(shared_corpus, agent_files=[SPECIALIST])

    assert SPECIALIST not in selection.files


def test_real_unresolved_are_the_three_absent_code_files(shared_corpus: Path) -> None:
    selection = select_files(shared_corpus, agent_files=[SPECIALIST])

    assert (selection.unresolved, selection.refused) == (REAL_UNRESOLVED, ())


def test_real_workspace_scope_adds_agent_files_and_skill_folders(shared_corpus: Path) -> None:
    cited = select_files(shared_corpus, agent_files=[SPECIALIST])
    workspace = select_files(shared_corpus, agent_files=[SPECIALIST], scope="workspace")

    assert set(cited.files) < set(workspace.files)
    assert {
        "agents/plugins/api-scaffolding/agents/fastapi-pro.md",
        "agents/plugins/python-development/agents/fastapi-pro.md",
        "agents/plugins/api-scaffolding/skills/fastapi-templates/SKILL.md",
        "agents/plugins/api-scaffolding/skills/fastapi-templates/references/details.md",
    } <= set(workspace.files)


def test_real_workspace_scope_takes_every_file_of_every_skill_folder(
    shared_corpus: Path,
) -> None:
    workspace = select_files(shared_corpus, agent_files=[SPECIALIST], scope="workspace")
    chosen = set(workspace.files)
    missing = []
    for skill in (p for p in workspace.files if Path(p).name == SKILL_FILE):
        for dirpath, dirnames, filenames in os.walk(shared_corpus / Path(skill).parent):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                rel = (Path(dirpath) / name).relative_to(shared_corpus).as_posix()
                indexable = Path(name).suffix.lower() in INDEXABLE_SUFFIXES
                if indexable and not name.startswith(".") and rel not in chosen:
                    missing.append(rel)

    assert missing == []
