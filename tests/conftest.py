"""Shared fixtures: isolated settings, the tiny fixture corpus, embedders, the real corpus."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from anthropic_server import FakeAnthropic

from bekb import KnowledgeBase, Settings
from bekb.embedding.model import SentenceTransformerEmbedder, Vectors, resolve_model
from bekb.settings import DEFAULT_EMBED_MODEL

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_CORPUS = SHARED / "corpus"
DEV_QUESTIONS = SHARED / "eval" / "dev.jsonl"
SPECIALIST = "specialists/backend-specialist.md"
TINY_AGENT = "specialists/test-specialist.md"
# An agent file as Claude Code plugins ship them: frontmatter, then the persona's body.
FASTAPI = """\
---
name: api-fastapi-pro
description: Build async APIs
  with FastAPI.
model: opus
---

You are a FastAPI expert.

## Capabilities
- Dependency injection
"""


class HashingEmbedder:
    """A deterministic stand-in model for tests about mechanics (plans, locks, state).

    Bag of hashed words → unit vector; it counts the texts it embeds.
    """

    model_id = "test/hashing-embedder"
    dimensions = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += len(texts)
        self.texts.extend(texts)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                slot = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimensions
                out[row, slot] += 1.0
            out[row, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def deny_reading(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Make opening `target` fail with "permission denied" (tests run as root, for whom
    chmod 000 changes nothing)."""
    import os

    real_open = os.open
    denied = target.resolve()

    def open_(path: Any, flags: int, *args: Any) -> int:
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", open_)


def store_state(kb: KnowledgeBase) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """(file → chunk ids) committed in the registry, and every chunk id in Chroma."""
    meta = kb.store.active()
    assert meta is not None
    records = kb.store.files(meta.collection)
    return (
        {path: record.chunk_ids for path, record in records.items()},
        set(kb.store.chunk_ages(meta.collection)),
    )


def assert_consistent(kb: KnowledgeBase) -> None:
    """Chroma holds exactly the committed chunks: none orphaned, none missing."""
    registry, in_store = store_state(kb)
    live = [cid for ids in registry.values() for cid in ids]
    assert len(live) == len(set(live))
    assert set(live) == in_store


def session_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder shared by every worker of this test session (pytest-xdist runs several)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' own temp folders sit side by side in it
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def machine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's stand-in for the user cache folder (BEKB_CACHE_DIR, inherited by
    subprocesses): the model's ONNX export is made once per test session and shared by every
    index, as it is by every index on a machine. Set before any fixture reads settings."""
    import os

    folder = session_folder(tmp_path_factory, "machine-cache")
    before = os.environ.get("BEKB_CACHE_DIR")
    os.environ["BEKB_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("BEKB_CACHE_DIR", None)
    else:
        os.environ["BEKB_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BEKB_*/ANTHROPIC_* variable or bekb.toml of the developer's leaks into a test (the
    session's BEKB_CACHE_DIR stays)."""
    import os

    for name in list(os.environ):
        if name.startswith(("BEKB_", "ANTHROPIC_")) and name != "BEKB_CACHE_DIR":
            monkeypatch.delenv(name)
    # Query expansion is one more API call before each answer: tests that mean it turn it on.
    monkeypatch.setenv("BEKB_EXPAND", "false")
    monkeypatch.chdir(tmp_path)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no developer settings, the session's cache."""
    import os

    keep = ("BEKB_CACHE_DIR",)
    env = {
        k: v
        for k, v in os.environ.items()
        if k in keep or not k.startswith(("BEKB_", "ANTHROPIC_"))
    }
    return {**env, **extra}


def ctrl_c_reaches_child() -> None:
    """`preexec_fn` for a subprocess a test sends SIGINT: Ctrl-C acts on it as from a terminal.

    Why: a test run started in the background (`make test-rest &`, some CI runners) ignores
    SIGINT, children inherit that, and Python then installs no KeyboardInterrupt handler.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A writable copy of tests/fixtures/corpus (a workspace with one agent file)."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "corpus", root)
    return root


@pytest.fixture
def tiny_settings(tiny_root: Path, tmp_path: Path) -> Settings:
    """Settings for the tiny corpus, with the index in the test's tmp dir."""
    return Settings.load(
        root=tiny_root, index_dir=tmp_path / "index", agent_files=(TINY_AGENT,), lock_timeout=5
    )


@pytest.fixture
def hashing_embedder() -> HashingEmbedder:
    """A fresh fake model that counts its calls."""
    return HashingEmbedder()


@pytest.fixture
def tiny_kb(tiny_settings: Settings, hashing_embedder: HashingEmbedder) -> KnowledgeBase:
    """The tiny corpus with the hashing embedder (not yet indexed)."""
    return KnowledgeBase.open(tiny_settings, embedder=hashing_embedder)


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2 through sentence-transformers, loaded once."""
    return SentenceTransformerEmbedder(resolve_model(DEFAULT_EMBED_MODEL))


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    """The real workspace beside the checkout (../shared/corpus)."""
    if not (SHARED_CORPUS / SPECIALIST).exists():
        pytest.skip("../shared/corpus is not beside the checkout")
    return SHARED_CORPUS


@pytest.fixture(scope="session")
def cited_index(
    shared_corpus: Path, tmp_path_factory: pytest.TempPathFactory, machine_cache: Path
) -> Settings:
    """Settings of an index of the real cited set, built once per session (read-only!) and
    shared by its workers.

    Built the way a user builds it (real model, ONNX export for queries).
    """
    from filelock import FileLock

    base = session_folder(tmp_path_factory, "cited")
    settings = Settings.load(
        root=shared_corpus, index_dir=base / "index", cache_dir=machine_cache, lock_timeout=30
    )
    with FileLock(str(base / "build.lock")):
        if not (base / "built").exists():
            KnowledgeBase.open(settings).index()
            (base / "built").touch()
    return settings


@pytest.fixture
def cited_kb(cited_index: Settings) -> Iterator[KnowledgeBase]:
    """A KnowledgeBase over the session's index of the real cited set."""
    yield KnowledgeBase.open(cited_index)


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    """A started loopback Messages-API server; point a client at `anthropic_server.url`."""
    with FakeAnthropic() as server:
        yield server
