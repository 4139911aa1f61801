"""Layers import downward only, and cheap commands stay cheap to start."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "bekb"
# Where each heavy dependency may be imported (STYLE.md section 1).
HOMES = {
    "chromadb": {"store.py"},
    "sentence_transformers": {"embedding.py", "retrieval/rerank.py"},
    "torch": {"embedding.py"},
    "anthropic": {"answering/llm.py"},
    "mcp": {"mcp/server.py"},
    "mcp_types": {"mcp/server.py"},
    "typer": {
        "cli/app.py",
        "cli/corpus.py",
        "cli/eval.py",
        "cli/index.py",
        "cli/mcp.py",
        "cli/query.py",
    },
    "rich": {"cli/progress.py"},
    "llama_index": set(),
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_heavy_dependencies_are_imported_only_in_their_home(path):
    rel = path.relative_to(SRC).as_posix()
    for name in imports(path):
        top = name.split(".")[0]
        if top in HOMES:
            assert rel in HOMES[top], f"{rel} imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_the_library_never_imports_its_front_doors(path):
    rel = path.relative_to(SRC).as_posix()
    if rel.startswith(("cli/", "mcp/")) or rel == "__main__.py":
        return
    for name in imports(path):
        assert not name.startswith(("bekb.cli", "bekb.mcp")), f"{rel} imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_front_doors_do_not_reach_into_each_other(path):
    rel = path.relative_to(SRC).as_posix()
    other = {"cli": "bekb.mcp", "mcp": "bekb.cli"}.get(rel.split("/")[0])
    if other and rel != "cli/mcp.py":  # `bekb mcp` is the one command that starts the server
        assert not any(name.startswith(other) for name in imports(path)), rel


def loaded_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(done.stdout.split())


HEAVY = {
    "chromadb",
    "torch",
    "sentence_transformers",
    "transformers",
    "anthropic",
    "llama_index",
    "onnxruntime",
    "mcp",
}


def test_the_cli_module_loads_no_heavy_dependency():
    assert not HEAVY & loaded_after("import bekb.cli.app")


def test_a_search_imports_neither_torch_nor_anthropic(cited_index):
    code = (
        "from bekb import KnowledgeBase, Settings\n"
        f"kb = KnowledgeBase.open(Settings.load(root={str(cited_index.root)!r}, "
        f"index_dir={str(cited_index.index_dir)!r}))\n"
        "assert kb.search('saga compensation', k=3)\n"
        "assert kb.ask('saga compensation', use_llm=False).mode == 'extractive'"
    )
    loaded = loaded_after(code)
    assert (
        not {"torch", "sentence_transformers", "transformers", "anthropic", "llama_index"} & loaded
    )
    assert "onnxruntime" in loaded
