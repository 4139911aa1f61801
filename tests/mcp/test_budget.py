"""Every tool result stays under the token budget; a cut result says how to get the rest,
and following its note returns exactly what was left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_support import SAGA_SKILL, data, run

from bekb import KnowledgeBase, Settings
from bekb.embedding.model import resolve_model
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.mcp.budget import Budget, compact
from bekb.mcp.server import build_server
from bekb.mcp.tools import Tools
from bekb.settings import DEFAULT_EMBED_MODEL

EVAL = Path(__file__).parents[2].parent / "shared" / "eval"


@pytest.fixture(scope="module")
def tokenizer() -> ModelTokenizer:
    return ModelTokenizer.for_model(resolve_model(DEFAULT_EMBED_MODEL))


def test_fit_items_keeps_whole_items_and_names_the_next_offset(tokenizer: ModelTokenizer) -> None:
    budget = Budget(150, tokenizer.count)
    data = {"hits": [f"passage number {i} about sagas and compensation" for i in range(20)]}
    fitted = budget.fit_items(data, "hits", offset=4, what="hits")
    shown = len(fitted["hits"])
    assert 0 < shown < 20 and fitted["hits"] == data["hits"][:shown]
    assert fitted["truncated"]["next_offset"] == 4 + shown
    assert f"offset={4 + shown}" in fitted["truncated"]["note"]
    assert budget.tokens(fitted) <= 150
    assert (
        budget.tokens({**data, "hits": data["hits"][: shown + 1], "truncated": fitted["truncated"]})
        > 150
    )


def test_fit_text_cuts_at_a_line_and_says_where_to_go_on(tokenizer: ModelTokenizer) -> None:
    budget = Budget(80, tokenizer.count)
    text = "".join(f"line {i}: the saga compensates step {i}\n" for i in range(1, 41))
    fitted = budget.fit_text({"text": text}, "text", first_line=11, how="read on")
    kept = fitted["text"].splitlines(keepends=True)
    assert kept == text.splitlines(keepends=True)[: len(kept)] and kept
    assert fitted["truncated"]["next_start_line"] == 11 + len(kept)
    assert budget.tokens(fitted) <= 80
    assert budget.fit_text({"text": "short\n"}, "text", first_line=1, how="x") == {
        "text": "short\n"
    }


def test_a_line_over_the_budget_is_cut_and_reading_goes_on_after_it(
    tokenizer: ModelTokenizer,
) -> None:
    budget = Budget(80, tokenizer.count)
    line = " ".join(f"token{i}" for i in range(2000))  # a minified file's one line
    fitted = budget.fit_text({"text": f"{line}\nnext\n"}, "text", first_line=3, how="read on")
    assert fitted["text"] and line.startswith(fitted["text"])
    assert fitted["truncated"]["next_start_line"] == 4
    assert "first line alone" in fitted["truncated"]["note"]
    assert budget.tokens(fitted) <= 80


def test_get_document_never_pages_on_the_same_line(
    tmp_path: Path, tokenizer: ModelTokenizer, hashing_embedder: Any
) -> None:
    (tmp_path / "docs").mkdir()
    one_line = " ".join(f"word{i}" for i in range(5000))
    (tmp_path / "docs" / "long.md").write_text(f"# Long\n{one_line}\nafter\n", encoding="utf-8")
    settings = Settings.load(
        root=tmp_path, index_dir=tmp_path / "index", include=("docs/*.md",), agent_files=()
    )
    kb = KnowledgeBase.open(settings, embedder=hashing_embedder)
    kb.index()
    tools = Tools(kb, Budget(200, tokenizer.count))

    part = tools.get_document("docs/long.md:2", None, None)

    assert part["text"] and one_line.startswith(part["text"])
    assert (part["start_line"], part["end_line"], part["location"]) == (2, 2, "docs/long.md:2-2")
    assert part["truncated"]["next_start_line"] == 3
    assert tools.get_document("docs/long.md", 3, None)["text"] == "after\n"


def test_a_second_cut_keeps_the_first_note(tokenizer: ModelTokenizer) -> None:
    budget = Budget(40, tokenizer.count)
    data = {"answer": "word " * 30 + "\n" + "word " * 30 + "\n", "hits": ["hit text " * 5] * 4}
    fitted = budget.fit_items(
        budget.fit_text(data, "answer", first_line=None, how="a"), "hits", what="hits", how="b"
    )
    assert fitted["truncated"]["note"].count("cut to") == 2


@pytest.fixture
def small_budget_kb(cited_index: Settings) -> KnowledgeBase:
    """The cited index served with a budget small enough to cut most results."""
    return KnowledgeBase.open(cited_index.model_copy(update={"mcp_max_tokens": 1000}))


def test_paging_through_cut_results_returns_everything_once(
    small_budget_kb: KnowledgeBase, cited_index: Settings
) -> None:
    server = build_server(small_budget_kb)

    async def main() -> dict[str, Any]:
        async with Client(server) as client:
            hits: list[Any] = []
            offset: int | None = 0
            while offset is not None:
                page = data(
                    await client.call_tool(
                        "search", {"query": "saga", "k": 20 - offset, "offset": offset}
                    )
                )
                hits += page["hits"]
                offset = page.get("truncated", {}).get("next_offset")
            text, start, cuts = "", 1, 0
            while start:
                part = data(
                    await client.call_tool(
                        "get_document", {"path": SAGA_SKILL, "start_line": start}
                    )
                )
                text += part["text"]
                start = part.get("truncated", {}).get("next_start_line")
                cuts += start is not None
            sources: list[Any] = []
            offset = 0
            while offset is not None:
                page = data(await client.call_tool("list_sources", {"offset": offset}))
                sources += page["sources"]
                offset = page.get("truncated", {}).get("next_offset")
            past_the_end = data(await client.call_tool("list_sources", {"offset": 500}))
            resource = await client.read_resource(f"bekb://{SAGA_SKILL}")
            return {
                "hits": hits,
                "text": text,
                "cuts": cuts,
                "sources": sources,
                "past_the_end": past_the_end,
                "resource": resource.contents[0].text,  # type: ignore[union-attr]
            }

    got = run(main)
    expected = small_budget_kb.search("saga", k=20)
    assert [(h["path"], h["start_line"]) for h in got["hits"]] == [
        (h.path, h.start_line) for h in expected
    ]
    assert got["cuts"] > 0
    assert got["text"] == (cited_index.root / SAGA_SKILL).read_text(encoding="utf-8")
    assert [s["path"] for s in got["sources"]] == [s.path for s in small_budget_kb.sources()]
    assert got["past_the_end"]["sources"] == [] and got["past_the_end"]["total"] == len(
        got["sources"]
    )
    # A resource is cut like get_document, its last line saying where to read on.
    *kept, note = got["resource"].rstrip("\n").split("\n")
    assert note.startswith("[cut to") and "get_document" in note
    next_line = int(note.rsplit("next_start_line=", 1)[1].rstrip("]"))
    assert "\n".join(kept).rstrip("\n") == "".join(
        got["text"].splitlines(keepends=True)[: next_line - 1]
    ).rstrip("\n")


def _questions(name: str) -> list[str]:
    lines = (EVAL / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("questions", ["dev.jsonl", "dev2.jsonl"])
def test_results_stay_under_the_default_budget_for_the_dev_questions(
    cited_kb: KnowledgeBase, questions: str
) -> None:
    if not (EVAL / questions).exists():
        pytest.skip("../shared/eval is not beside the checkout")
    server = build_server(cited_kb)
    limit = cited_kb.settings.mcp_max_tokens

    async def main() -> list[int]:
        sizes = []
        async with Client(server) as client:
            for question in _questions(questions):
                calls: list[tuple[str, dict[str, Any]]] = [
                    ("search", {"query": question}),
                    ("ask", {"question": question, "include_hits": True}),
                ]
                if len(sizes) < 30:  # the largest results: whole passages, many of them
                    calls.append(("search", {"query": question, "k": 30, "full_text": True}))
                for tool, arguments in calls:
                    result = await client.call_tool(tool, arguments)
                    sizes.append(cited_kb.count_tokens([compact(data(result))])[0])
        return sizes

    sizes = run(main, timeout=600)
    assert max(sizes) <= limit
    assert len(sizes) > 2 * len(_questions(questions))
