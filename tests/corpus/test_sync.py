"""Tests for corpus sync against a loopback HTTP upstream and local mirrors."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from bekb.corpus import sync as sync_module
from bekb.corpus.manifest import Lock, LockedFile, LockedRepo, build_lock, read_lock
from bekb.corpus.selection import select_files
from bekb.corpus.sync import RepoSyncReport, SyncFailure, SyncReport, sync_corpus
from bekb.errors import ConfigError, CorpusError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
COMMITTED_LOCK = REPO_ROOT / "corpus" / "sources.lock.json"
AGENT = "personas/backend.md"
GUIDE = "skills/docs/guide.md"
SKILL = "skills/plugins/api/saga/SKILL.md"
STEPS = "skills/plugins/api/saga/references/steps.md"
FILES = {
    AGENT: f"# Backend\n\nFollow `{SKILL}` and `{GUIDE}`.\n",
    SKILL: "---\nname: saga\n---\n# Saga\n\nSee references.\n",
    STEPS: "# Steps\n\nCompensate in reverse.\n",
    GUIDE: "# Guide\n\nIdempotency keys.\n",
    "skills/README.md": "# Not cited\n",
    "local/agent.md": f"# Local agent\n\nUses `{GUIDE}`.\n",
}
PINS = {
    "personas": ("https://github.com/example/personas", "b" * 40),
    "skills": ("https://github.com/example/skills", "a" * 40),
}
SOURCES = {
    "repos": {
        **{name: {"upstream": url, "commit": commit} for name, (url, commit) in PINS.items()},
        "local": {"upstream": None, "commit": None},
    }
}
SHORT_TIMEOUT = 0.5


class Upstream:
    """A loopback stand-in for raw.githubusercontent.com, with fault switches."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.missing: set[str] = set()
        self.tampered: set[str] = set()
        self.slow: set[str] = set()
        self.flaky: dict[str, int] = {}  # path -> how many 503 answers before the file
        self.requests: list[str] = []
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def raw_url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/{{owner}}/{{repo}}/{{commit}}/{{path}}"

    def answer(self, url_path: str) -> tuple[int, bytes]:
        owner, repo, commit, rest = unquote(url_path).lstrip("/").split("/", 3)
        names = {(f"https://github.com/{owner}/{repo}", commit)}
        name = next((n for n, pin in PINS.items() if pin in names), None)
        if name is None:
            return 404, b"no such repository or commit"
        path = f"{name}/{rest}"
        self.requests.append(path)
        if path in self.slow:
            self.release.wait(10)
        if self.flaky.get(path, 0) > 0:
            self.flaky[path] -= 1
            return 503, b"try again"
        source = self.workspace / path
        if path in self.missing or not source.is_file():
            return 404, b"404: Not Found"
        return 200, source.read_bytes() + (b"tampered" if path in self.tampered else b"")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = upstream.answer(self.path)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "SOURCES.json").write_text(json.dumps(SOURCES), encoding="utf-8")
    return root


@pytest.fixture
def lock(workspace: Path) -> Lock:
    return build_lock(workspace, [AGENT])


@pytest.fixture
def upstream(workspace: Path) -> Iterator[Upstream]:
    server = Upstream(workspace)
    server.thread.start()
    yield server
    server.release.set()
    server.server.shutdown()
    server.server.server_close()
    server.thread.join()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "synced"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module, "RETRY_BACKOFF", 0.01)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden temp files included), by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def pinned_tree(lock: Lock, workspace: Path, *, without: str = "") -> dict[str, bytes]:
    return {f.path: (workspace / f.path).read_bytes() for f in lock.files if f.path != without}


def test_clean_sync_fetches_every_locked_file_and_counts_per_repository(lock, upstream, target):
    report = sync_corpus(lock, target, raw_url=upstream.raw_url)

    assert report == SyncReport(
        root=target.resolve(),
        repos=(RepoSyncReport("personas", fetched=1), RepoSyncReport("skills", fetched=3)),
        failures=(),
    )
    assert report.ok
    assert tree(target) == pinned_tree(lock, upstream.workspace)
    assert {f.path: sha256(target / f.path) for f in lock.files} == {
        f.path: f.sha256 for f in lock.files
    }


def test_resync_skips_every_file_without_requests_or_writes(lock, upstream, target):
    sync_corpus(lock, target, raw_url=upstream.raw_url)
    before = {f.path: (target / f.path).stat().st_mtime_ns for f in lock.files}
    upstream.requests.clear()

    report = sync_corpus(lock, target, raw_url=upstream.raw_url)

    assert report.repos == (
        RepoSyncReport("personas", skipped=1),
        RepoSyncReport("skills", skipped=3),
    )
    assert upstream.requests == []
    assert {f.path: (target / f.path).stat().st_mtime_ns for f in lock.files} == before


def test_on_progress_is_called_after_each_file(lock, upstream, target):
    calls: list[tuple[str, int, int]] = []

    sync_corpus(lock, target, raw_url=upstream.raw_url, on_progress=lambda *a: calls.append(a))

    assert calls == [(f.path, n, 4) for n, f in enumerate(lock.files, start=1)]


def test_tampered_upstream_file_is_reported_and_not_written(lock, upstream, target):
    upstream.tampered.add(GUIDE)
    got = hashlib.sha256(FILES[GUIDE].encode() + b"tampered").hexdigest()
    expected = next(f.sha256 for f in lock.files if f.path == GUIDE)

    report = sync_corpus(lock, target, raw_url=upstream.raw_url)

    assert report.failures == (
        SyncFailure(GUIDE, f"sha256 mismatch (expected {expected[:12]}…, got {got[:12]}…)"),
    )
    assert not report.ok
    assert report.repos[1] == RepoSyncReport("skills", fetched=2, failed=1)
    assert tree(target) == pinned_tree(lock, upstream.workspace, without=GUIDE)


def test_tampered_upstream_leaves_an_existing_local_file_untouched(lock, upstream, target):
    local = target / GUIDE
    local.parent.mkdir(parents=True)
    local.write_text("# Guide\n\nan older local copy\n", encoding="utf-8")
    mtime = local.stat().st_mtime_ns
    upstream.tampered.add(GUIDE)

    report = sync_corpus(lock, target, raw_url=upstream.raw_url)

    assert [f.reason.split(" (")[0] for f in report.failures] == ["sha256 mismatch"]
    assert (local.read_text(), local.stat().st_mtime_ns) == (
        "# Guide\n\nan older local copy\n",
        mtime,
    )


def test_a_wrong_local_file_is_replaced_once_upstream_content_verifies(lock, upstream, target):
    local = target / GUIDE
    local.parent.mkdir(parents=True)
    local.write_text("edited by hand\n", encoding="utf-8")

    report = sync_corpus(lock, target, raw_url=upstream.raw_url)

    assert report.repos[1] == RepoSyncReport("skills", fetched=3)
    assert local.read_text() == FILES[GUIDE]


def test_a_file_missing_upstream_is_reported_as_404(lock, upstream, target):
    upstream.missing.add(STEPS)

    report = sync_corpus(lock, target, raw_url=upstream.raw_url)

    assert report.failures == (SyncFailure(STEPS, "not found upstream (404)"),)
    assert tree(target) == pinned_tree(lock, upstream.workspace, without=STEPS)


def test_a_slow_upstream_times_out_after_the_retries(lock, upstream, target):
    upstream.slow.add(SKILL)

    report = sync_corpus(lock, target, raw_url=upstream.raw_url, timeout=SHORT_TIMEOUT, retries=1)

    assert report.failures == (SyncFailure(SKILL, "timed out after 0.5s (2 attempts)"),)
    assert upstream.requests.count(SKILL) == 2
    assert tree(target) == pinned_tree(lock, upstream.workspace, without=SKILL)


def test_transient_server_errors_are_retried(lock, upstream, target):
    upstream.flaky[SKILL] = 2

    report = sync_corpus(lock, target, raw_url=upstream.raw_url, retries=2)

    assert report.ok
    assert upstream.requests.count(SKILL) == 3


def test_server_errors_past_the_retries_are_reported(lock, upstream, target):
    upstream.flaky[SKILL] = 5

    report = sync_corpus(lock, target, raw_url=upstream.raw_url, retries=1)

    assert report.failures == (SyncFailure(SKILL, "upstream answered HTTP 503 (2 attempts)"),)


def test_an_unreachable_upstream_fails_every_file_with_one_reason(lock, tmp_path, target):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    raw_url = f"http://127.0.0.1:{port}/{{owner}}/{{repo}}/{{commit}}/{{path}}"

    report = sync_corpus(lock, target, raw_url=raw_url, retries=1)

    reasons = {f.reason for f in report.failures}
    assert [f.path for f in report.failures] == [f.path for f in lock.files]
    assert len(reasons) == 1
    assert reasons.pop().startswith("cannot reach 127.0.0.1 (")
    assert tree(target) == {}


def test_an_interrupted_sync_resumes_with_the_remaining_files(lock, upstream, target):
    def interrupt_after_two(path: str, done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync_corpus(lock, target, raw_url=upstream.raw_url, on_progress=interrupt_after_two)
    first_two = [f.path for f in lock.files[:2]]
    assert sorted(tree(target)) == first_two
    upstream.requests.clear()

    report = sync_corpus(lock, target, raw_url=upstream.raw_url)

    assert report.repos == (
        RepoSyncReport("personas", skipped=1),
        RepoSyncReport("skills", fetched=2, skipped=1),
    )
    assert upstream.requests == [f.path for f in lock.files[2:]]
    assert tree(target) == pinned_tree(lock, upstream.workspace)


def escaping_lock(path: str) -> Lock:
    return Lock(
        version=1,
        agent_files=(),
        repos={"skills": LockedRepo(name="skills", upstream=PINS["skills"][0])},
        files=(LockedFile(path=path, sha256="0" * 64, size=1),),
    )


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("../evil.md", id="parent"),
        pytest.param("skills/../../evil.md", id="nested-parent"),
        pytest.param("/tmp/evil.md", id="absolute"),
        pytest.param("skills\\..\\..\\evil.md", id="backslashes"),
    ],
)
def test_a_locked_path_escaping_the_root_is_refused(path, workspace, tmp_path, target):
    report = sync_corpus(escaping_lock(path), target, mirror=workspace)

    assert report.failures == (SyncFailure(path, "path escapes the workspace root: refused"),)
    assert not (tmp_path / "evil.md").exists()
    assert tree(target) == {}


def test_a_locked_path_through_a_symlink_out_of_the_root_is_refused(
    lock, workspace, tmp_path, target
):
    outside = tmp_path / "outside"
    outside.mkdir()
    target.mkdir()
    (target / "skills").symlink_to(outside, target_is_directory=True)

    report = sync_corpus(lock, target, mirror=workspace)

    reason = "path resolves outside the workspace root (symlink): refused"
    assert report.failures == tuple(
        SyncFailure(f.path, reason) for f in lock.files if f.path.startswith("skills/")
    )
    assert list(outside.iterdir()) == []


def test_a_repository_without_upstream_needs_a_mirror(workspace, upstream, target):
    lock = build_lock(workspace, [AGENT, "local/agent.md"])

    report = sync_corpus(lock, target, raw_url=upstream.raw_url)

    assert report.failures == (
        SyncFailure("local/agent.md", "no upstream for repository 'local': use --from DIR"),
    )
    assert sync_corpus(lock, target, mirror=workspace).repos == (
        RepoSyncReport("local", copied=1),
        RepoSyncReport("personas", skipped=1),
        RepoSyncReport("skills", skipped=3),
    )


def test_mirror_sync_copies_verified_files_and_reports_missing_and_tampered(
    lock, workspace, target
):
    (workspace / STEPS).unlink()
    (workspace / GUIDE).write_text("# Guide\n\nchanged in the mirror\n", encoding="utf-8")

    report = sync_corpus(lock, target, mirror=workspace)

    assert [(f.path, f.reason.split(" (")[0]) for f in report.failures] == [
        (GUIDE, "sha256 mismatch"),
        (STEPS, "missing from mirror"),
    ]
    assert report.repos == (
        RepoSyncReport("personas", copied=1),
        RepoSyncReport("skills", copied=1, failed=2),
    )
    assert sorted(tree(target)) == [AGENT, SKILL]


def test_an_unusable_root_or_mirror_is_a_corpus_error(lock, workspace, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x", encoding="utf-8")

    with pytest.raises(CorpusError, match="cannot create workspace root"):
        sync_corpus(lock, not_a_folder, mirror=workspace)
    with pytest.raises(CorpusError, match=r"mirror folder .* does not exist"):
        sync_corpus(lock, tmp_path / "synced", mirror=tmp_path / "nowhere")


def test_a_bad_raw_url_template_is_a_config_error(lock, tmp_path):
    with pytest.raises(ConfigError, match="placeholders"):
        sync_corpus(lock, tmp_path / "synced", raw_url="https://example.org/{owner}/{branch}")


@pytest.mark.skipif(not SHARED_CORPUS.is_dir(), reason="the shared corpus is not on this machine")
def test_mirror_sync_of_the_shared_corpus_reproduces_its_cited_set(tmp_path):
    lock = read_lock(COMMITTED_LOCK)
    root = tmp_path / "corpus"

    report = sync_corpus(lock, root, mirror=SHARED_CORPUS)

    assert report.failures == ()
    assert sum(r.copied for r in report.repos) == len(lock.files)
    assert {f.path: sha256(root / f.path) for f in lock.files} == {
        f.path: f.sha256 for f in lock.files
    }
    synced = select_files(root, agent_files=lock.agent_files)
    shared = select_files(SHARED_CORPUS, agent_files=lock.agent_files)
    assert (synced.files, synced.unresolved) == (shared.files, shared.unresolved)
