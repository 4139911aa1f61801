"""No silent empties: settings that select no file make `index` fail with what to set
(ConfigError, exit 2), while `corpus status` still shows why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import hashing_app, invoke
from conftest import HashingEmbedder

from bekb import ConfigError, KnowledgeBase
from bekb.corpus.selection import require_files, select_files

AGENT = "specialists/lonely.md"
HINT = (
    "set `agent_files` to agent files that cite documents, add `include` globs "
    '(include = ["docs/**/*.md"]) or set scope = "workspace" in bekb.toml; '
    "`bekb init` writes one for a folder of agents and skills"
)


@pytest.fixture
def lonely_root(tmp_path: Path) -> Path:
    """A workspace whose one agent file cites only a file that is not there."""
    root = tmp_path / "root"
    (root / "specialists").mkdir(parents=True)
    (root / AGENT).write_text("---\nname: lonely\n---\n\nSee `docs/gone.md`.\n")
    (root / "docs").mkdir()
    (root / "docs" / "other.md").write_text("# Not cited\n")
    return root


def test_a_selection_of_no_file_is_a_config_error_naming_what_to_set(lonely_root: Path) -> None:
    selection = select_files(lonely_root, agent_files=[AGENT])

    with pytest.raises(ConfigError) as raised:
        require_files(selection)

    assert str(raised.value) == (
        f"the settings select no file to index under {lonely_root} (agent files: {AGENT}; "
        "their citations name no usable file (1 listed by `bekb corpus status`)): " + HINT
    )


def test_a_selection_with_files_is_returned_as_it_is(lonely_root: Path) -> None:
    selection = select_files(lonely_root, agent_files=[AGENT], include=["docs/*.md"])

    assert require_files(selection) is selection


def test_indexing_nothing_fails_in_the_library_and_builds_nothing(
    lonely_root: Path, tmp_path: Path
) -> None:
    kb = KnowledgeBase.open(
        root=lonely_root,
        index_dir=tmp_path / "index",
        agent_files=(AGENT,),
        embedder=HashingEmbedder(),
    )

    with pytest.raises(ConfigError, match="the settings select no file to index"):
        kb.index()
    assert not (tmp_path / "index").exists()


def test_indexing_nothing_exits_2_with_one_line_and_the_hint(
    lonely_root: Path, tmp_path: Path
) -> None:
    done = invoke(
        hashing_app(),
        ["--root", lonely_root, "--index-dir", tmp_path / "index", "index"],
        env={"BEKB_AGENT_FILES": AGENT},
    )

    assert (done.code, done.out) == (2, "")
    assert done.err.startswith("error: the settings select no file to index under ")
    assert done.err.endswith(HINT + "\n") and done.err.count("\n") == 1


def test_corpus_status_of_an_empty_selection_still_says_why(
    lonely_root: Path, tmp_path: Path
) -> None:
    done = invoke(
        hashing_app(),
        ["--root", lonely_root, "--index-dir", tmp_path / "index", "corpus", "status", "--json"],
        env={"BEKB_AGENT_FILES": AGENT},
    )

    assert done.code == 0
    data = json.loads(done.out)
    assert (data["files"], data["unresolved"]) == ([], ["docs/gone.md"])


def test_mcp_reindex_of_an_empty_selection_reports_the_hint(
    lonely_root: Path, tmp_path: Path
) -> None:
    import anyio
    from mcp import Client

    from bekb.mcp.server import build_server

    kb = KnowledgeBase.open(root=lonely_root, index_dir=tmp_path / "index", agent_files=(AGENT,))
    server = build_server(kb)

    async def main() -> None:
        async with Client(server) as client:
            started = await client.call_tool("reindex", {})
            assert started.structured_content["started"] is True

    anyio.run(main)
    build = server.builds.wait(60)
    assert build["running"] is False and build["report"] is None
    assert build["error"] is not None and HINT in build["error"]
