"""The `--json` shapes of DESIGN.md "Contracts", key by key, from the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import CliResult, invoke
from conftest import DEV_QUESTIONS

from bekb import Settings
from bekb.cli.app import build_app

HIT_KEYS = {"path", "heading", "start_line", "end_line", "score", "text"}


def bekb(settings: Settings, *args: str, check: bool = True) -> CliResult:
    """`bekb --root ROOT --index-dir DIR ARGS` in this process, with the real model."""
    root = ["--root", settings.root, "--index-dir", settings.index_dir]
    done = invoke(build_app(), [*root, *args])
    if check:
        assert done.code == 0, done.err
    return done


def as_json(settings: Settings, *args: str) -> Any:
    return json.loads(bekb(settings, *args, "--json").out)


def assert_hit(hit: dict[str, Any]) -> None:
    assert set(hit) >= HIT_KEYS
    assert isinstance(hit["path"], str) and isinstance(hit["heading"], str)
    assert isinstance(hit["start_line"], int) and isinstance(hit["end_line"], int)
    assert hit["start_line"] <= hit["end_line"]
    assert isinstance(hit["score"], float) and isinstance(hit["text"], str)


def test_search_json(cited_index):
    data = as_json(cited_index, "search", "saga compensation", "-k", "3")
    assert data["query"] == "saga compensation"
    assert len(data["hits"]) == 3
    for hit in data["hits"]:
        assert_hit(hit)


def test_ask_json_extractive(cited_index):
    data = as_json(cited_index, "ask", "how do I do sagas", "--no-llm")
    assert {"question", "mode", "answer", "citations", "hits"} <= set(data)
    assert data["question"] == "how do I do sagas"
    assert data["mode"] == "extractive"
    assert data["citations"]
    for n, citation in enumerate(data["citations"], start=1):
        assert {"n", "path", "heading", "start_line", "end_line"} <= set(citation)
        assert citation["n"] == n
    for hit in data["hits"]:
        assert_hit(hit)


def test_ask_json_abstain_and_fail_empty_exit_code(cited_index):
    done = bekb(
        cited_index,
        "ask",
        "best sourdough starter hydration for rye bread",
        "--json",
        "--fail-empty",
        check=False,
    )
    assert done.code == 3
    data = json.loads(done.out)
    assert (data["mode"], data["citations"]) == ("abstain", [])


def test_index_json_no_op(cited_index):
    data = as_json(cited_index, "index")
    assert data["files"] == {"added": 0, "changed": 0, "removed": 0, "unchanged": 38}
    assert (data["embedded"], data["cached"]) == (0, 0)
    assert isinstance(data["chunks"], int) and data["chunks"] > 0
    assert isinstance(data["seconds"], float)


def test_corpus_status_json(cited_index):
    data = as_json(cited_index, "corpus", "status")
    assert data["root"] == str(Path(cited_index.root).resolve())
    assert len(data["files"]) == 38
    assert {f["state"] for f in data["files"]} == {"indexed"}
    assert all(
        len(f["sha256"]) == 64 and set(f) >= {"path", "state", "sha256"} for f in data["files"]
    )
    assert sorted(data["unresolved"]) == [
        "claude-ui/server/index.js",
        "claude-ui/server/routes/auth.js",
        "ralph-orchestrator/crates/ralph-adapters/src/claude_stream.rs",
    ]


def test_status_json(cited_index):
    data = as_json(cited_index, "status")
    assert data["built"] is True
    assert data["files"] == 38
    assert data["store"] == "embedded"
    assert data["embed_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["query_backend"] == "onnx"
    assert data["query_adapter"] is True  # 830 chunks: fitted at index time
    assert data["stale"] == []


@pytest.mark.skipif(not DEV_QUESTIONS.exists(), reason="no ../shared/eval/dev.jsonl")
def test_eval_json(cited_index):
    data = as_json(cited_index, "eval", str(DEV_QUESTIONS))
    metric_keys = {
        "n",
        "hit@1",
        "hit@5",
        "mrr@10",
        "evidence@5",
        "abstain_rate",
        "false_abstain_rate",
    }
    assert set(data["overall"]) >= metric_keys
    assert all(set(m) >= metric_keys for m in data["by_kind"].values())
    assert all(set(m) >= metric_keys for m in data["by_corpus"].values())
    assert all({"id", "question", "rank"} <= set(miss) for miss in data["misses"])
