"""Messy trees: binary, unreadable and undecodable files, broken, looping and escaping symlinks,
citations that leave the root, paths with spaces and unicode, a 5 MB file. Each bad path is
skipped or refused with a reason; everything else indexes; nothing outside the root is read
into the index.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import TINY_AGENT, HashingEmbedder, assert_consistent, deny_reading, store_state
from hardening_support import error_line, run_cli, tally

from bekb import KnowledgeBase, UsageError

pytestmark = pytest.mark.hardening

REFS = "alpha/skills/sagas/references"
SECRET = "SECRET-TOKEN-4242"
LONG = "a" * 300
UNICODE = f"{REFS}/with space ünï 日本.md"
SPACED_SKILL = "alpha/skills/my skill/SKILL.md"
GOOD = [
    "alpha/skills/caching/SKILL.md",
    SPACED_SKILL,
    "alpha/skills/sagas/SKILL.md",
    f"{REFS}/details.md",
    f"{REFS}/empty.md",
    f"{REFS}/inside-link.md",
    UNICODE,
    "beta/docs/auth.md",
    "beta/src/server.py",
]
REFUSED = [
    ("../outside/secrets.md", "cited path escapes the workspace root"),
    ("/etc/hostname.md", "cited path escapes the workspace root"),
    ("alpha/escape-link.md", "cited path resolves outside the workspace root (symlink)"),
    (f"alpha/{LONG}.md", "cited path cannot be opened (File name too long)"),
    (f"{REFS}/broken.md", "broken or looping symlink"),
    (f"{REFS}/escape.md", "symlink points outside the workspace root"),
    (f"{REFS}/loop-a.md", "broken or looping symlink"),
    (f"{REFS}/loop-b.md", "broken or looping symlink"),
]
SKIPPED = [
    (f"{REFS}/diagram.md", "binary file (contains NUL bytes)"),
    (f"{REFS}/latin1.md", "not valid UTF-8 (byte 3)"),
]


@pytest.fixture
def messy_root(tiny_root: Path, tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(f"---\nname: {SECRET}\n---\n# Secret\n\n{SECRET}\n")
    refs = tiny_root / REFS
    (refs / "diagram.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (refs / "latin1.md").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (refs / "empty.md").write_text("")
    (refs / "with space ünï 日本.md").write_text("# Ünïcødé\n\nQuokka zephyr handshake.\n")
    (refs / "broken.md").symlink_to("nowhere.md")
    (refs / "loop-a.md").symlink_to("loop-b.md")
    (refs / "loop-b.md").symlink_to("loop-a.md")
    (refs / "escape.md").symlink_to(outside / "secret.md")
    (refs / "escape-dir").symlink_to(outside, target_is_directory=True)
    (refs / "up").symlink_to("..", target_is_directory=True)
    (refs / "inside-link.md").symlink_to("details.md")
    (tiny_root / "alpha/escape-link.md").symlink_to(outside / "secret.md")
    skill = tiny_root / "alpha/skills/my skill"
    skill.mkdir()
    (skill / "SKILL.md").write_text("# Spaced skill\n\nBlorptastic widget choreography.\n")
    agent = tiny_root / TINY_AGENT
    agent.write_text(
        agent.read_text()
        + "- A spaced path: `alpha/skills/my skill/SKILL.md`\n"
        + "- Absolute: `/etc/hostname.md`\n"
        + "- A link out: `alpha/escape-link.md`\n"
        + f"- A name too long: `alpha/{LONG}.md`\n"
        + "- A command, not a path: `git add src/app.py`\n"
    )
    return tiny_root


def test_a_messy_tree_indexes_the_good_files_and_says_why_for_each_bad_one(
    messy_root, tiny_settings, monkeypatch
):
    locked = messy_root / REFS / "locked.md"
    locked.write_text("# Locked\n\nNobody may read this.\n")
    deny_reading(monkeypatch, locked)
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())

    report = kb.index()

    registry, _ = store_state(kb)
    assert sorted(registry) == GOOD
    assert [(s.path, s.reason) for s in report.skipped] == sorted(
        [*SKIPPED, (f"{REFS}/locked.md", "unreadable (permission denied)")]
    )
    assert sorted((r.path, r.reason) for r in report.refused) == sorted(REFUSED)
    assert report.unresolved == ("gamma/src/stream.rs",)
    assert [h.path for h in kb.search("quokka zephyr handshake", k=1)] == [UNICODE]
    assert [h.path for h in kb.search("blorptastic widget choreography", k=1)] == [SPACED_SKILL]
    assert_consistent(kb)
    tally("hostile paths", len(GOOD) + len(REFUSED) + len(SKIPPED) + 1)


def test_nothing_from_outside_the_root_reaches_the_index(messy_root, tiny_settings):
    kb = KnowledgeBase.open(tiny_settings.model_copy(update={"include": ("**/*.md",)}))
    kb = KnowledgeBase.open(kb.settings, embedder=HashingEmbedder())
    kb.index()

    meta = kb.store.active()
    assert meta is not None
    texts = [c.text + c.context for c in kb.store.get_chunks(meta.collection)]
    assert texts and not [t for t in texts if SECRET in t]
    assert all(SECRET not in h.text for h in kb.search(SECRET, k=20))
    for escape in ("../outside/secret.md", f"{REFS}/escape.md", "/etc/passwd"):
        with pytest.raises(UsageError):
            kb.document(escape)


def test_the_cli_prints_one_line_per_skipped_or_refused_path_and_indexes_the_rest(
    messy_root, tmp_path
):
    done = run_cli(
        "--root", messy_root, "--index-dir", tmp_path / "index", "index",
        env={"BEKB_AGENT_FILES": TINY_AGENT},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if not line[:1].isspace()]
    wanted = [f"skipped {p}: {r}" for p, r in SKIPPED]
    wanted += [f"refused {p}: {r}" for p, r in sorted(REFUSED)]
    wanted += ["unresolved citation: gamma/src/stream.rs"]
    assert [n for n in notes if n.startswith(("skipped", "refused", "unresolved"))] == wanted
    assert "Traceback" not in done.stderr
    summary = f"indexed (full rebuild: no index yet): {len(GOOD)} added, 0 changed"
    assert done.stdout.startswith(summary)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads chmod 000 files anyway")
def test_a_chmod_000_file_is_skipped_and_keeps_nothing_half_read(tiny_root, tiny_settings):
    locked = tiny_root / REFS / "locked.md"
    locked.write_text("# Locked\n")
    locked.chmod(0)
    try:
        report = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder()).index()
    finally:
        locked.chmod(0o644)
    assert [(s.path, s.reason) for s in report.skipped] == [
        (f"{REFS}/locked.md", "unreadable (permission denied)")
    ]


def test_a_file_swapped_for_a_link_out_after_indexing_is_never_served(
    tiny_root, tiny_settings, tmp_path
):
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    kb.index()
    outside = tmp_path / "outside-secret.md"
    outside.write_text(f"# Secret\n\n{SECRET}\n")
    target = tiny_root / "beta/docs/auth.md"
    target.unlink()
    target.symlink_to(outside)

    with pytest.raises(UsageError, match="outside the workspace root"):
        kb.document("beta/docs/auth.md")
    report = kb.index()

    assert [(r.path, r.reason) for r in report.refused if r.path == "beta/docs/auth.md"] == [
        ("beta/docs/auth.md", "cited path resolves outside the workspace root (symlink)")
    ]
    assert "beta/docs/auth.md" not in store_state(kb)[0]


def test_sources_never_read_a_file_swapped_for_a_link_out(tiny_root, tiny_settings, tmp_path):
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    kb.index()
    outside = tmp_path / "outside-secret.md"
    outside.write_text(f"---\nname: {SECRET}\ndescription: {SECRET}\n---\n")
    target = tiny_root / "beta/docs/auth.md"
    target.unlink()
    target.symlink_to(outside)

    listed = kb.sources()

    assert [s for s in listed if SECRET in s.title + s.description] == []


def test_cli_search_on_a_root_that_does_not_exist_is_one_line_exit_2(tmp_path):
    done = run_cli("--root", tmp_path / "nope", "--index-dir", tmp_path / "i", "search", "x")

    assert done.returncode == 2
    assert error_line(done) == (
        f"error: workspace root {tmp_path / 'nope'} does not exist: pass --root, set BEKB_ROOT, "
        "or run `bekb corpus sync`"
    )


def test_an_index_dir_that_is_a_file_is_one_line_exit_1(tiny_root, tmp_path):
    blocker = tmp_path / "index"
    blocker.write_text("not a folder")

    done = run_cli(
        "--root", tiny_root, "--index-dir", blocker, "search", "saga",
        env={"BEKB_AGENT_FILES": TINY_AGENT},
    )  # fmt: skip

    assert done.returncode == 1
    assert error_line(done).startswith("error: ")


def test_a_5mb_file_indexes_and_is_searchable(tiny_root, tiny_settings):
    paragraph = "Compensate every completed step in reverse order when a later one fails. " * 14
    sections = [f"## Part {n}\n\n{paragraph}\n\n" for n in range(5_000_000 // 1_000)]
    huge = tiny_root / REFS / "huge.md"
    needle = "Xylophone quasar nebula. " * 6
    huge.write_text("# Huge\n\n" + "".join(sections) + f"## Needle\n\n{needle}\n")
    assert huge.stat().st_size > 5_000_000
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())

    report = kb.index()

    assert report.skipped == ()
    # The fake model's dense ranks are noise here, so the BM25 match may tie with a dense
    # one: the needle must be among the first hits, not necessarily the first.
    hits = kb.search("xylophone quasar nebula", k=3)
    assert (f"{REFS}/huge.md", "Huge > Needle") in [(h.path, h.heading) for h in hits]
    assert_consistent(kb)
