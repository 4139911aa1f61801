"""The MCP server, driven by the SDK's own clients: stdio and HTTP subprocesses, and in memory."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import subprocess_env
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent, Tool

from bekb import KnowledgeBase, Settings
from bekb.contracts import search_json
from bekb.mcp.server import build_server

TOOLS = {"search", "ask", "list_sources", "get_document"}
SAGA = "agents/plugins/backend-development/skills/saga-orchestration/"
SAGA_SKILL = SAGA + "SKILL.md"
SESSION_TIMEOUT = 180  # seconds; the first call loads the embedding model

# What the stdio session calls, in order: (label, tool, arguments).
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("search", "search", {"query": "saga compensation", "k": 3}),
    ("ask", "ask", {"question": "How do I compensate a failed step in a saga?"}),
    ("list_sources", "list_sources", {}),
    ("get_document", "get_document", {"path": SAGA_SKILL}),
    ("escape", "get_document", {"path": "../../etc/passwd"}),
    ("unindexed", "get_document", {"path": "SOURCES.json"}),
    ("empty_query", "search", {"query": ""}),
]


def _env() -> dict[str, str]:
    """The test process's environment without the developer's settings."""
    return subprocess_env()


def _bekb(settings: Settings, *extra: str) -> list[str]:
    return [
        "-m",
        "bekb",
        "--root",
        str(settings.root),
        "--index-dir",
        str(settings.index_dir),
        "mcp",
        *extra,
    ]


async def _script(session: ClientSession, calls: list[tuple[str, str, dict[str, Any]]]) -> Any:
    await session.initialize()
    results: dict[str, Any] = {"tools": (await session.list_tools()).tools}
    for label, tool, arguments in calls:
        results[label] = await session.call_tool(tool, arguments)
    return results


def _run(main: Callable[[], Awaitable[Any]], timeout: float = SESSION_TIMEOUT) -> Any:
    async def bounded() -> Any:
        with anyio.fail_after(timeout):
            return await main()

    return anyio.run(bounded)


@pytest.fixture(scope="module")
def stdio_results(cited_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every call of CALLS, made once through `bekb mcp` over stdio (no API key in its env)."""
    params = StdioServerParameters(
        command=sys.executable,
        args=_bekb(cited_index),
        env=_env(),
        cwd=tmp_path_factory.mktemp("mcp-cwd"),
    )

    async def main() -> Any:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            return await _script(session, CALLS)

    return _run(main)


def _data(result: CallToolResult) -> Any:
    """The structured result, after checking the text block carries the same JSON."""
    assert not result.is_error, result.content
    [block] = result.content
    assert isinstance(block, TextContent)
    assert json.loads(block.text) == result.structured_content
    return result.structured_content


def _error(result: CallToolResult) -> str:
    assert result.is_error
    [block] = result.content
    assert isinstance(block, TextContent)
    assert "\n" not in block.text
    assert "Traceback" not in block.text
    return block.text


def test_lists_exactly_the_four_read_only_tools(stdio_results: Any) -> None:
    tools: list[Tool] = stdio_results["tools"]
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert tool.description and len(tool.description) > 100
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.open_world_hint is False


def test_tool_input_schemas_name_their_arguments(stdio_results: Any) -> None:
    schemas = {t.name: t.input_schema for t in stdio_results["tools"]}
    assert {name: sorted(s["properties"]) for name, s in schemas.items()} == {
        "search": ["k", "query"],
        "ask": ["question"],
        "list_sources": [],
        "get_document": ["path"],
    }
    assert {name: s.get("required", []) for name, s in schemas.items()} == {
        "search": ["query"],
        "ask": ["question"],
        "list_sources": [],
        "get_document": ["path"],
    }


def test_search_returns_the_cli_json_of_the_same_search(
    stdio_results: Any, cited_kb: KnowledgeBase
) -> None:
    data = _data(stdio_results["search"])
    assert data == search_json("saga compensation", cited_kb.search("saga compensation", k=3))
    assert len(data["hits"]) == 3
    assert all(hit["path"].startswith(SAGA) for hit in data["hits"])


def test_ask_without_a_key_answers_extractively_citing_its_hits(stdio_results: Any) -> None:
    data = _data(stdio_results["ask"])
    assert data["mode"] == "extractive"
    assert data["question"] == "How do I compensate a failed step in a saga?"
    assert data["answer"].strip()
    assert data["citations"]
    hit_paths = {hit["path"] for hit in data["hits"]}
    assert {c["path"] for c in data["citations"]} <= hit_paths
    assert [c["n"] for c in data["citations"]] == list(range(1, len(data["citations"]) + 1))


def test_list_sources_returns_every_indexed_file_with_its_description(
    stdio_results: Any, cited_kb: KnowledgeBase
) -> None:
    sources = _data(stdio_results["list_sources"])["sources"]
    assert sources == [asdict(s) for s in cited_kb.sources()]
    assert len(sources) == 38
    [saga] = [s for s in sources if s["path"] == SAGA_SKILL]
    assert saga["title"] == "saga-orchestration"
    assert saga["description"].startswith("Implement saga patterns for distributed transactions")
    assert saga["chunks"] > 0


def test_get_document_returns_the_file_as_on_disk(
    stdio_results: Any, cited_index: Settings
) -> None:
    text = (cited_index.root / SAGA_SKILL).read_text(encoding="utf-8")
    assert _data(stdio_results["get_document"]) == {"path": SAGA_SKILL, "text": text}


@pytest.mark.parametrize(
    ("label", "message"),
    [
        pytest.param("escape", "'../../etc/passwd' is not an indexed file", id="path-escape"),
        pytest.param("unindexed", "'SOURCES.json' is not an indexed file", id="unindexed-path"),
        pytest.param("empty_query", "the query is empty", id="empty-query"),
    ],
)
def test_bad_input_gives_a_one_line_tool_error(
    stdio_results: Any, label: str, message: str
) -> None:
    assert message in _error(stdio_results[label])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http_server(cited_index: Settings, tmp_path: Path) -> Iterator[str]:
    """`bekb mcp --http PORT` running; yields its URL."""
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, *_bekb(cited_index, "--http", str(port))],
        env=_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "server did not start listening"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_http_transport_serves_the_same_tools(http_server: str) -> None:
    async def main() -> Any:
        async with (
            streamable_http_client(http_server) as (read, write),
            ClientSession(read, write) as session,
        ):
            return await _script(session, [("hit", "search", {"query": "saga", "k": 1})])

    results = _run(main)
    assert {t.name for t in results["tools"]} == TOOLS
    [hit] = _data(results["hit"])["hits"]
    assert hit["path"].startswith(SAGA)


def test_in_memory_server_answers_from_the_library(tiny_kb: KnowledgeBase) -> None:
    tiny_kb.index()

    async def main() -> Any:
        async with Client(build_server(tiny_kb)) as client:
            return (
                await client.call_tool("list_sources"),
                await client.call_tool("search", {"query": "retry with backoff", "k": 2}),
                await client.call_tool("get_document", {"path": "nowhere.md"}),
            )

    sources, search, missing = _run(main, timeout=60)
    assert _data(sources) == {"sources": [asdict(s) for s in tiny_kb.sources()]}
    assert _data(search) == search_json(
        "retry with backoff", tiny_kb.search("retry with backoff", k=2)
    )
    assert _error(missing) == (
        "Error executing tool get_document: 'nowhere.md' is not an indexed file"
    )


def test_importing_the_server_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, bekb.mcp.server, bekb.cli.mcp\n"
        "heavy = ('chromadb', 'torch', 'sentence_transformers', 'anthropic', 'onnxruntime')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
