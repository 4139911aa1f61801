"""Tests for the lock file: building it from a workspace, writing, reading, and what it lacks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cli_support import hashing_app, invoke

from bekb import KnowledgeBase, Settings
from bekb.corpus.manifest import (
    Lock,
    LockedFile,
    LockedRepo,
    build_lock,
    missing_from_lock,
    packaged_lock,
    read_lock,
    repin_command,
    save_lock,
)
from bekb.corpus.selection import select_files
from bekb.errors import CorpusError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
COMMITTED_LOCK = REPO_ROOT / "corpus" / "sources.lock.json"
AGENT = "personas/backend.md"
FILES = {
    AGENT: "# Backend\n\nFollow `skills/plugins/api/saga/SKILL.md` and `skills/docs/guide.md`.\n"
    "Also `skills/src/absent.py`, which is not there.\n",
    "skills/plugins/api/saga/SKILL.md": "---\nname: saga\n---\n# Saga\n\nSee references.\n",
    "skills/plugins/api/saga/references/steps.md": "# Steps\n\nCompensate in reverse.\n",
    "skills/docs/guide.md": "# Guide\n\nIdempotency keys.\n",
    "skills/README.md": "# Not cited\n",
}
SOURCES = {
    "repos": {
        "personas": {"upstream": "https://github.com/example/personas", "commit": "b" * 40},
        "skills": {"upstream": "https://github.com/example/skills", "commit": "a" * 40},
        "local": {"upstream": None, "commit": None, "note": "no upstream"},
    }
}


def make_workspace(root: Path) -> Path:
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "SOURCES.json").write_text(json.dumps(SOURCES), encoding="utf-8")
    return root


def pinned(rel: str) -> LockedFile:
    data = FILES[rel].encode()
    return LockedFile(path=rel, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "workspace")


def test_build_lock_pins_cited_files_their_skill_folder_and_the_agent_file(workspace):
    lock = build_lock(workspace, [AGENT])

    assert lock == Lock(
        version=1,
        agent_files=(AGENT,),
        repos={
            "local": LockedRepo(name="local"),
            "personas": LockedRepo(
                name="personas", upstream="https://github.com/example/personas", commit="b" * 40
            ),
            "skills": LockedRepo(
                name="skills", upstream="https://github.com/example/skills", commit="a" * 40
            ),
        },
        files=(
            pinned(AGENT),
            pinned("skills/docs/guide.md"),
            pinned("skills/plugins/api/saga/SKILL.md"),
            pinned("skills/plugins/api/saga/references/steps.md"),
        ),
    )


def test_write_lock_then_read_lock_gives_the_same_lock(workspace, tmp_path):
    lock = build_lock(workspace, [AGENT])
    path = tmp_path / "out" / "sources.lock.json"

    save_lock(lock, path)

    assert read_lock(path) == lock


def test_write_lock_writes_sorted_pretty_json_with_a_trailing_newline(tmp_path):
    lock = Lock(
        version=1,
        agent_files=("b/agent.md",),
        repos={
            "b": LockedRepo(name="b"),
            "a": LockedRepo(name="a", upstream="https://github.com/o/a", commit="c" * 40),
        },
        files=(
            LockedFile(path="b/agent.md", sha256="1" * 64, size=3),
            LockedFile(path="a/x.md", sha256="2" * 64, size=5),
        ),
    )
    path = tmp_path / "lock.json"

    save_lock(lock, path)
    first = path.read_bytes()
    save_lock(read_lock(path), path)

    assert path.read_bytes() == first
    assert first.decode() == (
        "{\n"
        '  "agent_files": [\n    "b/agent.md"\n  ],\n'
        '  "files": [\n'
        f'    {{\n      "path": "a/x.md",\n      "sha256": "{"2" * 64}",\n'
        '      "size": 5\n    },\n'
        f'    {{\n      "path": "b/agent.md",\n      "sha256": "{"1" * 64}",\n      "size": 3\n'
        "    }\n  ],\n"
        '  "repos": {\n'
        f'    "a": {{\n      "commit": "{"c" * 40}",\n'
        '      "upstream": "https://github.com/o/a"\n    },\n'
        '    "b": {\n      "commit": null,\n      "upstream": null\n    }\n  },\n'
        '  "version": 1\n'
        "}\n"
    )
    assert list(tmp_path.iterdir()) == [path]


GOOD_FILE = {"path": "a/x.md", "sha256": "0" * 64, "size": 1}


def lock_text(**changes: object) -> str:
    data = {"version": 1, "agent_files": ["a/x.md"], "repos": {"a": {}}, "files": [GOOD_FILE]}
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, "not found: create it with `bekb corpus pin`", id="missing"),
        pytest.param("{not json", "is malformed (Invalid JSON", id="not-json"),
        pytest.param(lock_text(version=2), "unsupported lock version 2", id="version"),
        pytest.param(
            lock_text(files=[{**GOOD_FILE, "sha256": "xyz"}]),
            "is malformed (files.0.sha256: String should match pattern",
            id="bad-sha256",
        ),
        pytest.param(lock_text(files=[GOOD_FILE, GOOD_FILE]), "a/x.md is listed twice", id="dupe"),
        pytest.param(lock_text(repos=[]), "is malformed (repos: Input should be", id="repos-list"),
    ],
)
def test_read_lock_refuses_a_missing_or_malformed_lock_in_one_line(tmp_path, text, expected):
    path = tmp_path / "sources.lock.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")

    with pytest.raises(CorpusError) as caught:
        read_lock(path)

    message = str(caught.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_build_lock_refuses_a_file_whose_repository_sources_json_does_not_list(workspace):
    (workspace / "other").mkdir()
    (workspace / "other" / "doc.md").write_text("# Other\n", encoding="utf-8")
    (workspace / AGENT).write_text("See `other/doc.md`.\n", encoding="utf-8")

    with pytest.raises(CorpusError, match=r"repository 'other', which SOURCES\.json does not list"):
        build_lock(workspace, [AGENT])


def test_build_lock_needs_sources_json(workspace):
    (workspace / "SOURCES.json").unlink()

    with pytest.raises(CorpusError, match=r"needs its SOURCES\.json"):
        build_lock(workspace, [AGENT])


def test_missing_from_lock_lists_citations_added_after_pinning(workspace):
    lock = build_lock(workspace, [AGENT])
    agent = workspace / AGENT
    agent.write_text(agent.read_text() + "New: `skills/README.md`.\n", encoding="utf-8")

    selection = select_files(workspace, agent_files=[AGENT])

    assert missing_from_lock(lock, selection) == ["skills/README.md"]


def test_missing_from_lock_is_empty_for_a_current_lock(workspace):
    lock = build_lock(workspace, [AGENT])

    assert missing_from_lock(lock, select_files(workspace, agent_files=[AGENT])) == []


def test_repin_command_names_the_command_root_and_agents():
    assert repin_command("../shared/corpus", ["specialists/a.md"]) == (
        "bekb --root ../shared/corpus corpus pin --agent specialists/a.md"
    )


def test_corpus_pin_writes_the_lock_and_prints_a_summary(workspace, tmp_path):
    out = tmp_path / "corpus" / "sources.lock.json"

    result = invoke(
        hashing_app(),
        ["--root", str(workspace), "corpus", "pin", "--agent", AGENT, "--out", str(out)],
    )

    assert (result.code, result.err) == (0, "")
    size = sum(len(FILES[p.path].encode()) for p in build_lock(workspace, [AGENT]).files)
    assert result.out == f"pinned 4 files ({size} bytes) from 2 repositories to {out}\n"
    assert read_lock(out) == build_lock(workspace, [AGENT])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--agent", "../../etc/passwd", "--out", "{out}"],
            "error: nothing pinned: ../../etc/passwd: agent file is outside the workspace root "
            "(name agent files under it)\n",
        ),
        (
            ["--agent", AGENT, "--out", "{folder}"],
            "error: cannot write the lock to {folder}: it is a directory\n",
        ),
    ],
    ids=["agent-outside-the-root", "out-is-a-directory"],
)
def test_corpus_pin_refuses_in_one_line_and_keeps_the_lock(workspace, tmp_path, args, message):
    out = tmp_path / "sources.lock.json"
    save_lock(build_lock(workspace, [AGENT]), out)
    before = out.read_bytes()
    names = {"out": str(out), "folder": str(tmp_path)}
    args = [arg.format(**names) for arg in args]

    result = invoke(hashing_app(), ["--root", str(workspace), "corpus", "pin", *args])

    assert (result.code, result.out, result.err) == (2, "", message.format(**names))
    assert out.read_bytes() == before
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.part"))


@pytest.mark.skipif(not SHARED_CORPUS.is_dir(), reason="the shared corpus is not on this machine")
def test_sync_outside_a_checkout_uses_the_lock_bekb_ships(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no corpus/sources.lock.json here: as after `pip install bekb`
    kb = KnowledgeBase.open(Settings.load(root=tmp_path / "root"))

    report = kb.sync(mirror=SHARED_CORPUS)

    pinned = read_lock(packaged_lock())
    assert report.ok and sum(r.copied for r in report.repos) == len(pinned.files)
    assert pinned == read_lock(COMMITTED_LOCK)  # the packaged lock is the checkout's


@pytest.mark.skipif(not SHARED_CORPUS.is_dir(), reason="the shared corpus is not on this machine")
def test_committed_lock_pins_the_shared_corpus_as_it_is():
    lock = read_lock(COMMITTED_LOCK)

    assert lock == build_lock(SHARED_CORPUS, lock.agent_files), (
        f"corpus/sources.lock.json is stale: run `{repin_command(SHARED_CORPUS)}`"
    )
