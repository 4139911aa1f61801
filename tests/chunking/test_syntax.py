"""Code chunking: top-level definitions where a tree-sitter grammar exists, else paragraphs."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from bekb.chunking import chunk_file
from bekb.chunking.blocks import pieces_of_lines, split_lines
from bekb.chunking.syntax import GRAMMARS, code_blocks
from bekb.domain import Chunk
from bekb.embedding.model import resolve_model
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.settings import DEFAULT_EMBED_MODEL

SERVER = "beta/src/server.py"
WHY = "compensate the completed steps in reverse order when a later step fails"

# Two top-level definitions per language, the second with a comment right above it.
SAMPLES = {
    ".py": (
        f'import json\n\n\ndef reserve(order):\n    """Reserve stock: {WHY}."""\n'
        "    return json.dumps(order)\n\n\n"
        f'# Charging is the second step.\nclass Charge:\n    """Charge the card: {WHY}."""\n\n'
        "    def run(self, order):\n        return order\n"
    ),
    ".js": (
        f'const fs = require("fs");\n\n/** Reserve stock: {WHY}. */\n'
        "function reserve(order) {\n  return JSON.stringify(order);\n}\n\n"
        f"// Charging is the second step: {WHY}.\n"
        "class Charge {\n  run(order) {\n    return order;\n  }\n}\n"
    ),
    ".ts": (
        f'import {{ Order }} from "./order";\n\n/** Reserve stock: {WHY}. */\n'
        "export function reserve(order: Order): string {\n  return JSON.stringify(order);\n}\n\n"
        f"// Charging is the second step: {WHY}.\n"
        "export class Charge {\n  run(order: Order): Order {\n    return order;\n  }\n}\n"
    ),
    ".rs": (
        f"use std::fmt;\n\n/// Reserve stock: {WHY}.\n"
        "pub fn reserve(order: &str) -> String {\n    order.to_string()\n}\n\n"
        f"// Charging is the second step: {WHY}.\npub struct Charge {{\n    amount: u64,\n}}\n"
    ),
    ".go": (
        f'package saga\n\nimport "fmt"\n\n// Reserve stock: {WHY}.\n'
        "func Reserve(order string) string {\n\treturn fmt.Sprint(order)\n}\n\n"
        f"// Charge is the second step: {WHY}.\ntype Charge struct {{\n\tAmount int\n}}\n"
    ),
}


@pytest.fixture(scope="module")
def counter() -> ModelTokenizer:
    return ModelTokenizer.for_model(resolve_model(DEFAULT_EMBED_MODEL))


def _chunks(counter: ModelTokenizer, path: str, text: str, *, max_tokens: int = 0) -> list[Chunk]:
    return chunk_file(path, text, "f" * 64, counter, max_tokens=max_tokens)


def _spans(chunks: list[Chunk]) -> list[tuple[str, str, int, int]]:
    return [(c.kind, c.heading, c.start_line, c.end_line) for c in chunks]


def test_python_splits_at_top_level_functions_and_classes(counter: ModelTokenizer) -> None:
    text = (FIXTURES / "corpus" / SERVER).read_text(encoding="utf-8")

    assert _spans(_chunks(counter, SERVER, text)) == [
        ("code", '"""A tiny HTTP server used as a code fixture."""', 1, 5),
        ("code", "def health() -> dict[str, str]", 6, 10),
        ("code", "class Router", 11, 21),
    ]


def test_code_context_names_the_file_and_the_definition(counter: ModelTokenizer) -> None:
    text = (FIXTURES / "corpus" / SERVER).read_text(encoding="utf-8")

    assert [c.context for c in _chunks(counter, SERVER, text)] == [
        f'{SERVER}\n"""A tiny HTTP server used as a code fixture."""',
        f"{SERVER}\ndef health() -> dict[str, str]",
        f"{SERVER}\nclass Router",
    ]


@pytest.mark.parametrize(
    ("suffix", "spans"),
    [
        pytest.param(
            ".py",
            [("def reserve(order)", 1, 8), ("class Charge", 9, 14)],
            id="python",
        ),
        pytest.param(
            ".js",
            [
                ('const fs = require("fs");', 1, 2),
                ("function reserve(order)", 3, 7),
                ("class Charge", 8, 13),
            ],
            id="javascript",
        ),
        pytest.param(
            ".ts",
            [
                ("export function reserve(order: Order): string", 1, 7),
                ("export class Charge", 8, 13),
            ],
            id="typescript",
        ),
        pytest.param(
            ".rs",
            [("pub fn reserve(order: &str) -> String", 1, 7), ("pub struct Charge", 8, 11)],
            id="rust",
        ),
        pytest.param(
            ".go",
            [("func Reserve(order string) string", 1, 9), ("type Charge struct", 10, 13)],
            id="go",
        ),
    ],
)
def test_code_splits_at_syntax_boundaries(
    counter: ModelTokenizer, suffix: str, spans: list[tuple[str, int, int]]
) -> None:
    chunks = _chunks(counter, f"src/saga{suffix}", SAMPLES[suffix])

    assert [(c.heading, c.start_line, c.end_line) for c in chunks] == spans


@pytest.mark.parametrize("suffix", sorted(SAMPLES))
def test_comment_above_a_definition_starts_its_chunk(counter: ModelTokenizer, suffix: str) -> None:
    chunks = _chunks(counter, f"src/saga{suffix}", SAMPLES[suffix])

    assert chunks[-1].text.startswith(("# Charg", "// Charg"))


@pytest.mark.parametrize("suffix", sorted(SAMPLES))
def test_code_chunks_concatenate_to_the_file(counter: ModelTokenizer, suffix: str) -> None:
    chunks = _chunks(counter, f"src/saga{suffix}", SAMPLES[suffix])

    assert "".join(c.text for c in chunks) == SAMPLES[suffix]


def test_methods_stay_inside_their_class_when_it_fits(counter: ModelTokenizer) -> None:
    methods = "".join(
        f"    def step_{n}(self, order):\n        return self.compensate(order, {n})\n\n"
        for n in range(4)
    )
    text = f"class OrderSaga:\n{methods}"

    assert _spans(_chunks(counter, "saga.py", text)) == [("code", "class OrderSaga", 1, 13)]


def test_definition_over_the_window_is_cut_between_lines(counter: ModelTokenizer) -> None:
    methods = "".join(
        f"    def step_{n}(self, order):\n        return self.compensate(order, {n})\n\n"
        for n in range(12)
    )
    text = f"class OrderSaga:\n{methods}"

    chunks = _chunks(counter, "saga.py", text, max_tokens=64)

    assert len(chunks) > 2
    assert {c.heading for c in chunks} == {"class OrderSaga"}
    assert all(c.text.endswith("\n") for c in chunks)


def test_source_with_syntax_errors_is_still_covered(counter: ModelTokenizer) -> None:
    text = (
        f"def broken(:\n    pass  # {WHY}\n\n"
        f"def fine(order):\n    # {WHY}\n    return order\n\n"
        "class Unclosed(\n"
    )

    chunks = _chunks(counter, "saga.py", text)

    assert "".join(c.text for c in chunks) == text


def test_code_without_a_grammar_splits_at_blank_lines(
    counter: ModelTokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(GRAMMARS, ".py", ("tree_sitter_not_installed", "language"))
    text = "".join(f"def step_{n}(order):\n    # {WHY}\n    return order\n\n" for n in range(6))

    chunks = _chunks(counter, "saga.py", text, max_tokens=64)

    assert _spans(chunks) == [
        ("code", "", 1, 8),
        ("code", "", 9, 16),
        ("code", "", 17, 24),
    ]


def test_code_blocks_is_none_without_a_grammar(
    counter: ModelTokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(GRAMMARS, ".py", ("tree_sitter_not_installed", "language"))
    lines = split_lines("def f():\n    return 1\n")
    pieces = pieces_of_lines(lines, counter.count(lines), 1)

    assert code_blocks(".py", "".join(lines), pieces) is None


def test_code_blocks_is_none_for_an_unknown_suffix(counter: ModelTokenizer) -> None:
    lines = split_lines("echo saga\n")
    pieces = pieces_of_lines(lines, counter.count(lines), 1)

    assert code_blocks(".sh", "".join(lines), pieces) is None


def test_code_blocks_labels_each_top_level_definition(counter: ModelTokenizer) -> None:
    text = SAMPLES[".go"]
    lines = split_lines(text)
    blocks = code_blocks(".go", text, pieces_of_lines(lines, counter.count(lines), 1))

    assert blocks is not None
    assert [(b.label, b.pieces[0].start_line, b.pieces[-1].end_line) for b in blocks] == [
        ("package saga", 1, 2),
        ('import "fmt"', 3, 4),
        ("func Reserve(order string) string", 5, 9),
        ("type Charge struct", 10, 13),
    ]


def test_shell_script_is_chunked_as_plain_text(counter: ModelTokenizer) -> None:
    text = "#!/bin/sh\n# Start the saga worker.\n\nexec saga-worker --queue orders\n"

    assert _spans(_chunks(counter, "bin/run.sh", text)) == [("prose", "", 1, 4)]
