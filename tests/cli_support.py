"""Running the CLI in tests: in process with typer's CliRunner, with any model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import typer
from conftest import HashingEmbedder
from typer.testing import CliRunner

from bekb import KnowledgeBase, Settings
from bekb.cli.app import build_app
from bekb.embedding.model import Embedder


@dataclass(frozen=True)
class CliResult:
    """What one `bekb ...` run gave: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


class SlowHashingEmbedder(HashingEmbedder):
    """The hashing model, `delay` seconds per text: a build that takes a while."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def embed(self, texts):  # type: ignore[no-untyped-def]
        import time

        time.sleep(self.delay * len(texts))
        return super().embed(texts)


def hashing_app(delay: float = 0.0) -> typer.Typer:
    """The `bekb` app with the deterministic hashing model instead of the real one (taking
    `delay` seconds per text embedded)."""

    def open_kb(settings: Settings) -> KnowledgeBase:
        model = SlowHashingEmbedder(delay) if delay else HashingEmbedder()
        return KnowledgeBase.open(settings, embedder=model)

    return build_app(open_kb)


def model_app(embedder: Embedder) -> typer.Typer:
    """The `bekb` app with an already loaded model (the session's real one, say)."""

    def open_kb(settings: Settings) -> KnowledgeBase:
        return KnowledgeBase.open(settings, embedder=embedder)

    return build_app(open_kb)


def invoke(
    app: typer.Typer,
    args: Sequence[object],
    *,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> CliResult:
    """Run `bekb ARGS` in this process; fails the test on a traceback or a stray exception."""
    result = CliRunner().invoke(app, [str(a) for a in args], input=stdin, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)
