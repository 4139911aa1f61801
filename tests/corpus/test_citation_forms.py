"""Citations as people write them: backtick paths, Markdown links, `@path` mentions and bare
relative paths, looked for beside the agent file first, then under the root; what names no
usable file is listed by `bekb corpus status` with why."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import CliResult, hashing_app, invoke
from conftest import SHARED_CORPUS, SPECIALIST

from bekb.corpus.selection import Reference, references, select_files
from bekb.domain import SkippedFile, UnresolvedCitation

AGENT = "team/agents/lead.md"
FRONTMATTER = "---\nname: lead\ndescription: Leads the team\n---\n\n"


def workspace(root: Path, body: str, files: tuple[str, ...]) -> Path:
    """A root whose agent file (in a subfolder) has `body`; `files` exist with a heading."""
    for rel in (AGENT, *files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(FRONTMATTER + body if rel == AGENT else f"# {rel}\n", encoding="utf-8")
    return root


def selected(root: Path) -> tuple[str, ...]:
    return select_files(root, agent_files=[AGENT]).files


def problems(root: Path) -> list[tuple[str, str, str]]:
    return [
        (c.path, c.problem, c.form)
        for c in select_files(root, agent_files=[AGENT]).unresolved_citations
    ]


def test_each_citation_form_selects_the_file_it_names(tmp_path: Path) -> None:
    root = workspace(
        tmp_path / "root",
        "Backtick: `docs/backtick.md`.\n"
        "Links: [beside](notes/beside.md#intro), [up](../../docs/linked.md 'Linked').\n"
        "[ref]: ../../docs/reference.md\n"
        "Mention: @docs/mentioned.md, please.\n"
        "Bare: read docs/bare.md.\n",
        (
            "docs/backtick.md",
            "team/agents/notes/beside.md",
            "docs/linked.md",
            "docs/reference.md",
            "docs/mentioned.md",
            "docs/bare.md",
            "docs/unrelated.md",
        ),
    )

    assert selected(root) == (
        "docs/backtick.md",
        "docs/bare.md",
        "docs/linked.md",
        "docs/mentioned.md",
        "docs/reference.md",
        "team/agents/notes/beside.md",
    )


def test_a_citation_is_looked_for_beside_the_agent_file_first_then_under_the_root(
    tmp_path: Path,
) -> None:
    root = workspace(
        tmp_path / "root",
        "[guide](docs/guide.md), `docs/only-at-root.md`\n",
        ("team/agents/docs/guide.md", "docs/guide.md", "docs/only-at-root.md"),
    )

    assert selected(root) == ("docs/only-at-root.md", "team/agents/docs/guide.md")


def test_urls_anchors_images_and_code_are_not_citations(tmp_path: Path) -> None:
    root = workspace(
        tmp_path / "root",
        "See https://example.com/docs/web.md, <mailto:docs/mail.md> and [site](http://x.io/a.md)\n"
        "[top](#overview) [mail](mailto:team@docs/mail.md) ![diagram](../../docs/image.md)\n"
        "```sh\ncat docs/fenced.md   # [x](../../docs/fenced.md) @docs/fenced.md\n```\n"
        "Inline `cat docs/inline.md` is a command.\n",
        ("docs/web.md", "docs/mail.md", "docs/image.md", "docs/fenced.md", "docs/inline.md"),
    )

    assert (selected(root), problems(root)) == ((), [])


def test_an_email_address_or_a_decorator_is_no_mention(tmp_path: Path) -> None:
    text = "Mail lead@docs/team.md or use @app.get and @dataclass; cite @docs/real.md."

    assert references(text) == [Reference("docs/real.md", "mention")]


def test_a_missing_link_or_mention_is_listed_and_a_missing_bare_path_is_prose(
    tmp_path: Path,
) -> None:
    root = workspace(
        tmp_path / "root",
        "[gone](notes/gone.md), @docs/gone.md, `docs/gone-too.md`, maybe docs/never.md\n",
        (),
    )
    selection = select_files(root, agent_files=[AGENT])

    assert selection.unresolved == ("docs/gone-too.md", "team/agents/notes/gone.md", "docs/gone.md")
    assert problems(root) == [
        ("docs/gone-too.md", "missing", "backtick"),
        ("team/agents/notes/gone.md", "missing", "link"),
        ("docs/gone.md", "missing", "mention"),
    ]


def test_citations_escaping_the_root_are_refused_and_nothing_outside_is_read(
    tmp_path: Path,
) -> None:
    (tmp_path / "outside.md").write_text("# SECRET\n")
    root = workspace(
        tmp_path / "root",
        "[out](../../../outside.md) `../outside.md` @~/secret.md @/etc/hostname.md ../outside.md\n",
        (),
    )
    selection = select_files(root, agent_files=[AGENT])

    escapes = "cited path escapes the workspace root"
    assert selection.files == ()
    assert selection.unresolved_citations == (
        UnresolvedCitation("../outside.md", "outside_root", AGENT, "backtick", escapes),
        UnresolvedCitation("../../../outside.md", "outside_root", AGENT, "link", escapes),
        UnresolvedCitation("~/secret.md", "outside_root", AGENT, "mention", escapes),
        UnresolvedCitation("/etc/hostname.md", "outside_root", AGENT, "mention", escapes),
    )
    assert [r.path for r in selection.refused] == sorted(
        ["../outside.md", "../../../outside.md", "~/secret.md", "/etc/hostname.md"]
    )


def test_a_symlink_out_of_the_root_and_a_fifo_are_refused_as_cited(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("# SECRET\n")
    root = workspace(tmp_path / "root", "[leak](leak.md) and @docs/pipe.md\n", ("docs/x.md",))
    (root / "team/agents/leak.md").symlink_to(tmp_path / "secret.md")
    os.mkfifo(root / "docs/pipe.md")

    selection = select_files(root, agent_files=[AGENT])

    assert selection.files == ()
    assert problems(root) == [
        ("team/agents/leak.md", "outside_root", "link"),
        ("docs/pipe.md", "not_text", "mention"),
    ]
    assert selection.refused == (
        SkippedFile("docs/pipe.md", "not a regular file"),
        SkippedFile(
            "team/agents/leak.md", "cited path resolves outside the workspace root (symlink)"
        ),
    )


def test_a_bare_path_that_is_a_refused_file_is_listed(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("# SECRET\n")
    root = workspace(tmp_path / "root", "Read docs/leak.md first.\n", ())
    (root / "docs").mkdir()
    (root / "docs/leak.md").symlink_to(tmp_path / "secret.md")

    assert problems(root) == [("docs/leak.md", "outside_root", "bare")]


# `bekb corpus status`


@pytest.fixture
def mixed_root(tmp_path: Path) -> Path:
    """One citation of each outcome: selected, missing, outside the root, not a text file."""
    root = workspace(
        tmp_path / "root",
        "`docs/a.md`, [gone](notes/gone.md), [out](../../../outside.md), @docs/pipe.md\n",
        ("docs/a.md",),
    )
    os.mkfifo(root / "docs/pipe.md")
    return root


def status(root: Path, tmp_path: Path, *args: str) -> CliResult:
    return invoke(
        hashing_app(),
        ["--root", root, "--index-dir", tmp_path / "index", "corpus", "status", *args],
        env={"BEKB_AGENT_FILES": AGENT},
    )


def test_corpus_status_lists_every_unresolved_citation_with_why_and_counts(
    mixed_root: Path, tmp_path: Path
) -> None:
    done = status(mixed_root, tmp_path)

    assert (done.code, done.err) == (0, "")
    assert done.out.splitlines() == [
        f"root {mixed_root}",
        "  new        docs/a.md",
        f"  unresolved team/agents/notes/gone.md: missing (cited by {AGENT})",
        "  unresolved ../../../outside.md: outside the root: cited path escapes the workspace "
        f"root (cited by {AGENT})",
        f"  unresolved docs/pipe.md: not a text file: not a regular file (cited by {AGENT})",
        "files 1 (indexed 0, new 1, changed 0, deleted 0); unresolved citations 3 (missing 1, "
        "outside the root 1, not a text file 1); refused 2",
    ]


def test_corpus_status_lists_cited_files_that_are_no_text_as_refused(tmp_path: Path) -> None:
    root = workspace(tmp_path / "root", "`docs/a.md`, `docs/bin.md`, `docs/latin1.md`\n", ())
    (root / "docs").mkdir()
    (root / "docs/a.md").write_text("# A\n", encoding="utf-8")
    (root / "docs/bin.md").write_bytes(b"# B\n\x00\x01\x02")
    (root / "docs/latin1.md").write_bytes("# Caf\u00e9\n".encode("latin-1"))

    done = status(root, tmp_path)
    data = json.loads(status(root, tmp_path, "--json").out)

    assert done.code == 0
    lines = done.out.splitlines()
    assert "  new        docs/a.md" in lines
    assert any(line.startswith("  refused    docs/bin.md: binary") for line in lines), lines
    assert any(line.startswith("  refused    docs/latin1.md: not valid UTF-8") for line in lines)
    assert {r["path"] for r in data["refused"]} == {"docs/bin.md", "docs/latin1.md"}
    assert data["counts"]["refused"] == 2


def test_corpus_status_names_an_include_glob_that_matches_no_file(tmp_path: Path) -> None:
    root = workspace(tmp_path / "root", "`docs/a.md`\n", ("docs/a.md", "docs/runbooks/x.md"))
    env = {"BEKB_AGENT_FILES": AGENT, "BEKB_INCLUDE": "docs/runbook/*.md,docs/runbooks/*.md"}
    where = ["--root", root, "--index-dir", tmp_path / "index", "corpus", "status"]

    data = json.loads(invoke(hashing_app(), [*where, "--json"], env=env).out)
    shown = invoke(hashing_app(), where, env=env).out.splitlines()

    assert data["unmatched_globs"] == ["docs/runbook/*.md"]
    assert "docs/runbooks/x.md" in {f["path"] for f in data["files"]}
    assert "  unmatched  include glob 'docs/runbook/*.md' matches no file" in shown


def test_corpus_status_json_keeps_its_keys_and_adds_citations_and_counts(
    mixed_root: Path, tmp_path: Path
) -> None:
    data = json.loads(status(mixed_root, tmp_path, "--json").out)

    assert list(data) == [
        "root",
        "files",
        "unresolved",
        "refused",
        "unresolved_citations",
        "counts",
        "unmatched_globs",
    ]
    assert data["unresolved"] == ["team/agents/notes/gone.md"]
    assert data["unresolved_citations"] == [
        {
            "path": "team/agents/notes/gone.md",
            "problem": "missing",
            "agent_file": AGENT,
            "form": "link",
            "detail": "",
        },
        {
            "path": "../../../outside.md",
            "problem": "outside_root",
            "agent_file": AGENT,
            "form": "link",
            "detail": "cited path escapes the workspace root",
        },
        {
            "path": "docs/pipe.md",
            "problem": "not_text",
            "agent_file": AGENT,
            "form": "mention",
            "detail": "not a regular file",
        },
    ]
    assert data["counts"] == {
        "files": 1,
        "indexed": 0,
        "new": 1,
        "changed": 0,
        "deleted": 0,
        "unresolved_citations": 3,
        "missing": 1,
        "outside_root": 1,
        "not_text": 1,
        "refused": 2,
    }


# The real workspace: the new forms add nothing to the specialist's cited set


@pytest.mark.skipif(not (SHARED_CORPUS / SPECIALIST).exists(), reason="no ../shared/corpus")
def test_the_real_specialist_cites_with_backticks_only() -> None:
    text = (SHARED_CORPUS / SPECIALIST).read_text(encoding="utf-8")

    assert {r.form for r in references(text)} == {"backtick"}
    assert len(select_files(SHARED_CORPUS, agent_files=[SPECIALIST]).files) == 38
