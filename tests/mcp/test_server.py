"""`bekb mcp` over stdio, driven by the SDK's client on the real cited index: every tool
with normal, boundary and unknown arguments, resources and prompts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp_support import SAGA, SAGA_SKILL, bekb_args, data, env, error, run

from bekb import KnowledgeBase, Settings
from bekb.contracts import hit_json
from bekb.inputs import MAX_K

TOOLS = {"search", "ask", "list_sources", "get_document", "status", "reindex"}
QUESTION = "How do I compensate a failed step in a saga?"

# What the session calls, in order: (label, tool, arguments).
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("search", "search", {"query": "saga compensation"}),
    ("search_k1", "search", {"query": "saga compensation", "k": 1}),
    ("search_kmax", "search", {"query": "saga compensation", "k": MAX_K}),
    ("search_page", "search", {"query": "saga compensation", "k": 3, "offset": 2}),
    ("search_full", "search", {"query": "saga compensation", "k": 2, "full_text": True}),
    ("search_k0", "search", {"query": "saga", "k": 0}),
    ("search_k_over", "search", {"query": "saga", "k": MAX_K + 1}),
    ("search_offset_over", "search", {"query": "saga", "k": 50, "offset": 60}),
    ("search_unknown", "search", {"query": "saga", "limit": 3}),
    ("search_empty", "search", {"query": ""}),
    ("search_blank", "search", {"query": "   "}),
    ("ask", "ask", {"question": QUESTION}),
    ("ask_k", "ask", {"question": QUESTION, "k": 2, "include_hits": True}),
    ("ask_persona", "ask", {"question": QUESTION, "persona": "fastapi-pro"}),
    ("ask_unknown_persona", "ask", {"question": QUESTION, "persona": "no-such-agent"}),
    ("ask_unknown", "ask", {"question": QUESTION, "as": "fastapi-pro"}),
    (
        "ask_history",
        "ask",
        {"question": "and how do I test it?", "history": [{"question": QUESTION, "answer": "x"}]},
    ),
    ("ask_bad_history", "ask", {"question": QUESTION, "history": [{"question": QUESTION}]}),
    ("list_sources", "list_sources", {}),
    ("list_sources_offset", "list_sources", {"offset": 30}),
    ("document", "get_document", {"path": SAGA_SKILL}),
    ("document_range", "get_document", {"path": SAGA_SKILL, "start_line": 5, "end_line": 9}),
    ("document_location", "get_document", {"path": f"{SAGA_SKILL}:5-9"}),
    ("document_label", "get_document", {"path": f"{SAGA_SKILL}#Saga Orchestration (lines 5-9)"}),
    ("document_uri", "get_document", {"path": f"bekb://{SAGA_SKILL}:5-9"}),
    ("document_quoted_uri", "get_document", {"path": f"bekb://{quote(SAGA_SKILL, safe='')}:5-9"}),
    ("document_past_end", "get_document", {"path": SAGA_SKILL, "start_line": 100000}),
    ("document_escape", "get_document", {"path": "../../etc/passwd"}),
    ("document_unindexed", "get_document", {"path": "SOURCES.json"}),
    ("document_unknown", "get_document", {"path": SAGA_SKILL, "lines": "1-3"}),
    ("status", "status", {}),
    ("status_unknown", "status", {"verbose": True}),
]


@pytest.fixture(scope="module")
def session(cited_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every call of CALLS, plus the listings, made once through `bekb mcp` over stdio
    (no API key in its environment)."""
    params = StdioServerParameters(
        command=sys.executable,
        args=bekb_args(cited_index),
        env=env(),
        cwd=tmp_path_factory.mktemp("mcp-cwd"),
    )

    async def main() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            results: dict[str, Any] = {
                "tools": (await client.list_tools()).tools,
                "resources": (await client.list_resources()).resources,
                "templates": (await client.list_resource_templates()).resource_templates,
                "prompts": (await client.list_prompts()).prompts,
                "resource": await client.read_resource(f"bekb://{SAGA_SKILL}"),
                "prompt": await client.get_prompt("backend-specialist", {"question": QUESTION}),
                "prompt_bare": await client.get_prompt("api-scaffolding-fastapi-pro"),
            }
            for label, tool, arguments in CALLS:
                results[label] = await client.call_tool(tool, arguments)
            for label, call in [
                ("resource_escape", client.read_resource("bekb://../../etc/passwd")),
                ("resource_unindexed", client.read_resource("bekb://SOURCES.json")),
                ("prompt_unknown", client.get_prompt("no-such-agent")),
                (
                    "prompt_bad_argument",
                    client.get_prompt("api-scaffolding-fastapi-pro", {"topic": "x"}),
                ),
            ]:
                try:
                    await call
                except MCPError as exc:
                    results[label] = exc
            return results

    return run(main)


def test_lists_the_six_tools_and_only_reindex_writes(session: dict[str, Any]) -> None:
    tools = {t.name: t for t in session["tools"]}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 100
        assert tool.annotations.read_only_hint is (tool.name != "reindex")
        assert tool.annotations.open_world_hint is False


def test_input_schemas_are_closed_described_and_bounded(session: dict[str, Any]) -> None:
    schemas = {t.name: t.input_schema for t in session["tools"]}
    assert {name: sorted(s["properties"]) for name, s in schemas.items()} == {
        "search": ["full_text", "k", "offset", "query"],
        "ask": ["history", "include_hits", "k", "persona", "question"],
        "list_sources": ["offset"],
        "get_document": ["end_line", "path", "start_line"],
        "status": [],
        "reindex": [],
    }
    for name, schema in schemas.items():
        assert schema["additionalProperties"] is False, name
        for field, spec in schema["properties"].items():
            assert spec.get("description"), (name, field)
    k = schemas["search"]["properties"]["k"]
    assert (k["minimum"], k["maximum"], k["default"]) == (1, MAX_K, 8)
    assert schemas["search"]["properties"]["query"]["minLength"] == 1


def test_output_schemas_describe_the_results(session: dict[str, Any]) -> None:
    schemas = {t.name: t.output_schema for t in session["tools"]}
    assert set(schemas["search"]["properties"]) >= {"query", "hits", "offset", "truncated"}
    hit = schemas["search"]["$defs"]["SearchHit"]
    assert set(hit["required"]) >= {"path", "location", "snippet", "start_line", "end_line"}
    assert "text" not in hit["required"]
    assert set(schemas["ask"]["required"]) >= {"mode", "answer", "citations", "uncovered"}
    assert schemas["ask"]["properties"]["mode"]["enum"] == ["llm", "extractive", "abstain"]


def test_search_is_lean_compact_passages_with_their_location(
    session: dict[str, Any], cited_kb: KnowledgeBase
) -> None:
    result = data(session["search"])
    hits = cited_kb.search("saga compensation", k=8)
    assert [(h["path"], h["start_line"], h["end_line"]) for h in result["hits"]] == [
        (h.path, h.start_line, h.end_line) for h in hits
    ]
    for lean, hit in zip(result["hits"], hits, strict=True):
        assert "text" not in lean
        assert lean["location"] == f"{hit.path}:{hit.start_line}-{hit.end_line}"
        numbered = [line.split(": ", 1) for line in lean["snippet"].split("\n")]
        for number, line in numbered:  # each snippet line is that line of the passage
            assert hit.text.split("\n")[int(number) - hit.start_line].startswith(line.rstrip("…"))
    assert result["hits"][0]["path"].startswith(SAGA)
    assert len(session["search"].content[0].text) < 8000  # was 13.8 KB with whole texts


def test_search_k_and_offset_page_through_one_ranking(session: dict[str, Any]) -> None:
    full = data(session["search_kmax"])["hits"]
    assert data(session["search_k1"])["hits"] == full[:1]
    page = data(session["search_page"])
    assert page["offset"] == 2 and page["hits"] == full[2:5]
    whole = data(session["search_full"])["hits"]
    assert [h["text"] for h in whole] and all(h["text"].strip() for h in whole)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (
            "search_k0",
            "invalid arguments for search: k: Input should be greater than or equal to 1",
        ),
        ("search_k_over", f"k: Input should be less than or equal to {MAX_K}"),
        ("search_offset_over", f"offset + k is at most {MAX_K}"),
        ("search_unknown", "unknown argument 'limit'"),
        ("search_empty", "query: String should have at least 1 character"),
        ("search_blank", "the query is empty"),
        ("ask_unknown", "invalid arguments for ask: unknown argument 'as'"),
        ("document_unknown", "unknown argument 'lines'"),
        ("status_unknown", "unknown argument 'verbose'"),
        ("ask_bad_history", "history.0.answer: Field required"),
        ("document_escape", "outside the workspace root"),
        ("document_unindexed", "'SOURCES.json' is not an indexed file: pass a path or location"),
        ("document_past_end", f"line 100000 is outside {SAGA_SKILL} ("),
        ("ask_unknown_persona", "no-such-agent"),
    ],
)
def test_bad_arguments_give_one_line_an_agent_can_act_on(
    session: dict[str, Any], label: str, message: str
) -> None:
    assert message in error(session[label])


def test_ask_returns_the_answer_and_quoted_citations_without_hits(
    session: dict[str, Any],
) -> None:
    answer = data(session["ask"])
    assert answer["mode"] == "extractive"
    assert answer["notice"].startswith("extractive:")
    assert "ANTHROPIC_API_KEY" not in answer["notice"] + answer["answer"]
    assert "hits" not in answer
    assert answer["citations"] and all(c["quote"].strip() for c in answer["citations"])
    assert all(f"[{c['n']}] {c['location']}" in answer["answer"] for c in answer["citations"])
    assert answer["citations"][0]["path"].startswith(SAGA)
    assert answer["persona"] == "backend-specialist"


def test_ask_takes_k_and_persona(session: dict[str, Any]) -> None:
    narrow = data(session["ask_k"])
    assert len(narrow["hits"]) == 2
    assert {c["path"] for c in narrow["citations"]} <= {h["path"] for h in narrow["hits"]}
    assert data(session["ask_persona"])["persona"] == "api-scaffolding-fastapi-pro"


def test_ask_takes_earlier_turns(session: dict[str, Any]) -> None:
    answer = data(session["ask_history"])
    assert answer["question"] == "and how do I test it?"
    assert (answer["rewrites"], answer["searches"], answer["usage"]) == ([], [], None)  # no key


def test_list_sources_pages_with_a_total(session: dict[str, Any], cited_kb: KnowledgeBase) -> None:
    first = data(session["list_sources"])
    assert first["total"] == len(cited_kb.sources()) == 38
    assert [s["path"] for s in first["sources"]] == [s.path for s in cited_kb.sources()]
    rest = data(session["list_sources_offset"])
    assert rest["sources"] == first["sources"][30:] and rest["offset"] == 30


def test_get_document_reads_what_the_other_tools_return(
    session: dict[str, Any], cited_index: Settings
) -> None:
    lines = (cited_index.root / SAGA_SKILL).read_text(encoding="utf-8").splitlines(keepends=True)
    whole = data(session["document"])
    assert whole["text"] == "".join(lines)
    assert (whole["start_line"], whole["end_line"], whole["total_lines"]) == (
        1,
        len(lines),
        len(lines),
    )
    expected = {
        "path": SAGA_SKILL,
        "start_line": 5,
        "end_line": 9,
        "total_lines": len(lines),
        "location": f"{SAGA_SKILL}:5-9",
        "text": "".join(lines[4:9]),
    }
    places = ("document_range", "document_location", "document_label", "document_uri")
    for label in (*places, "document_quoted_uri"):
        assert data(session[label]) == expected, label


def test_status_reports_the_index_and_an_idle_build(session: dict[str, Any]) -> None:
    status = data(session["status"])
    assert status["built"] is True and status["files"] == 38 and status["stale"] == []
    assert status["build"]["running"] is False and status["build"]["stage"] == ""


def test_each_indexed_source_is_a_readable_resource(
    session: dict[str, Any], cited_kb: KnowledgeBase, cited_index: Settings
) -> None:
    resources = session["resources"]
    assert [r.uri for r in resources] == [f"bekb://{s.path}" for s in cited_kb.sources()]
    [saga] = [r for r in resources if r.name == SAGA_SKILL]
    assert saga.title == "saga-orchestration" and saga.mime_type == "text/markdown"
    assert [t.uri_template for t in session["templates"]] == ["bekb://{+path}"]
    [content] = session["resource"].contents
    assert content.text == (cited_index.root / SAGA_SKILL).read_text(encoding="utf-8")


def test_resources_outside_the_index_are_refused(session: dict[str, Any]) -> None:
    assert "Unknown resource" in str(session["resource_escape"])
    assert "'SOURCES.json' is not an indexed file" in str(session["resource_unindexed"])


def test_each_persona_is_a_prompt_priming_the_host_to_use_the_tools(
    session: dict[str, Any], cited_kb: KnowledgeBase
) -> None:
    prompts = {p.name: p for p in session["prompts"]}
    assert set(prompts) == {p.name for p in cited_kb.personas()}
    assert {"backend-specialist", "api-scaffolding-fastapi-pro"} <= set(prompts)
    [argument] = prompts["backend-specialist"].arguments
    assert (argument.name, argument.required) == ("question", False)
    [message] = session["prompt"].messages
    text = message.content.text
    assert message.role == "user"
    assert text.startswith("You are backend-specialist:")
    assert cited_kb.persona("backend-specialist").body.strip()[:200] in text
    assert 'persona="backend-specialist"' in text and "`search`" in text
    assert text.rstrip().endswith(f"Question: {QUESTION}")
    assert "Question:" not in session["prompt_bare"].messages[0].content.text


def test_unknown_prompts_and_arguments_are_invalid_params(session: dict[str, Any]) -> None:
    for label in ("prompt_unknown", "prompt_bad_argument"):
        assert session[label].error.code == -32602, label
    assert "no prompt 'no-such-agent'" in str(session["prompt_unknown"])


def test_hits_carry_the_cli_places(session: dict[str, Any], cited_kb: KnowledgeBase) -> None:
    [lean] = data(session["search_k1"])["hits"]
    [hit] = cited_kb.search("saga compensation", k=1)
    full = hit_json(hit)
    for key in ("path", "heading", "start_line", "end_line", "location", "label", "kind", "stale"):
        assert lean[key] == full[key], key
    assert lean["copies"] == [
        {"path": c["path"], "location": c["location"]} for c in full["copies"]
    ]


def test_importing_the_server_loads_no_heavy_dependency(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys, bekb.mcp.server, bekb.cli.mcp\n"
        "heavy = ('chromadb', 'torch', 'sentence_transformers', 'anthropic', 'onnxruntime',"
        " 'llama_index')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
