"""Layers import downward only (the table in docs/architecture.md), and heavy dependencies
live where the docs say, so cheap commands stay cheap to start."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "bekb"
ARCHITECTURE = REPO / "docs" / "architecture.md"
MODULES = sorted(SRC.rglob("*.py"))


def layer_table() -> dict[str, int]:
    """Top-level module or package → its layer, read from docs/architecture.md."""
    layers: dict[str, int] = {}
    for line in ARCHITECTURE.read_text().splitlines():
        row = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if row:
            for name in re.findall(r"`([\w.]+)`", row.group(2)):
                layers[name] = int(row.group(1))
    return layers


def group_of(rel: str) -> str:
    """The top-level module or package a source file belongs to (`retrieval/bm25.py` →
    `retrieval`; `bekb/__init__.py` → `__init__`)."""
    first = rel.split("/")[0]
    return first.removesuffix(".py")


def bekb_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a bekb module, at any depth in the file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "bekb"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bekb":
                found += [(node.lineno, "bekb")]
            elif node.module.startswith("bekb."):
                found.append((node.lineno, node.module))
    return found


def imported_group(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_the_layer_table_names_every_module():
    table = layer_table()
    groups = {group_of(p.relative_to(SRC).as_posix()) for p in MODULES}
    assert groups - set(table) == set(), "add these to the table in docs/architecture.md"
    assert set(table) - groups == set(), "the table names modules that do not exist"


def violations(rel: str, imports: list[tuple[int, str]], table: dict[str, int]) -> list[str]:
    """The imports of module `rel` that point up or sideways in `table`."""
    own = group_of(rel)
    return [
        f"line {line}: {module} (layer {table[imported_group(module)]})"
        for line, module in imports
        if imported_group(module) != own and table[imported_group(module)] >= table[own]
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_layer_table(path):
    rel = path.relative_to(SRC).as_posix()
    table = layer_table()
    assert violations(rel, bekb_imports(path), table) == [], f"{rel} (layer {table[group_of(rel)]})"


def test_the_layer_check_refuses_sideways_and_upward_imports_anywhere_in_a_file(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text(
        "from bekb.retrieval.bm25 import KeywordIndex\n"
        "from bekb.errors import CorpusError\n"
        "from bekb.corpus.agents import is_agent_path\n"
        "def f():\n"
        "    from bekb import KnowledgeBase\n"
    )
    found = bekb_imports(sample)
    assert found == [
        (1, "bekb.retrieval.bm25"),
        (2, "bekb.errors"),
        (3, "bekb.corpus.agents"),
        (5, "bekb"),
    ]
    assert violations("corpus/selection.py", found, layer_table()) == [
        "line 1: bekb.retrieval.bm25 (layer 3)",
        "line 5: bekb (layer 6)",
    ]


def heavy_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


# Where each heavy dependency may be imported (docs/architecture.md, "Layers").
HOMES = {
    "chromadb": lambda rel: rel == "store/chroma.py",
    "sentence_transformers": lambda rel: rel in {"embedding/model.py", "retrieval/rerank.py"},
    "torch": lambda rel: rel == "embedding/onnx.py",
    "anthropic": lambda rel: rel == "answering/llm.py",
    "mcp": lambda rel: rel.startswith("mcp/"),
    "mcp_types": lambda rel: rel.startswith("mcp/"),
    "typer": lambda rel: rel.startswith("cli/"),
    "rich": lambda rel: rel in {"cli/progress.py", "cli/render.py"},
    "llama_index": lambda rel: rel.startswith("integrations/"),
}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_heavy_dependencies_are_imported_only_in_their_home(path):
    rel = path.relative_to(SRC).as_posix()
    misplaced = {name for name in heavy_imports(path) if name in HOMES and not HOMES[name](rel)}
    assert misplaced == set(), f"{rel} imports {misplaced}"


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
    assert not HEAVY & loaded_after("import bekb.cli.app; bekb.cli.app.build_app()")


def test_importing_bekb_or_its_entry_point_loads_nothing_yet():
    # The entry point catches Ctrl-C only once it runs: until then nothing may be slow.
    loaded = loaded_after("import bekb, bekb.__main__")
    assert {"pydantic", "typer", "bekb.knowledge_base", "bekb.settings"}.isdisjoint(loaded)
    assert "bekb.knowledge_base" in loaded_after("from bekb import KnowledgeBase")


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
