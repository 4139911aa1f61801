"""Tools run in parallel: several client sessions at once get exactly the serial results,
and `reindex` builds in the background while searches go on answering."""

from __future__ import annotations

from typing import Any

import anyio
from mcp import Client
from mcp_support import data, run

from bekb import KnowledgeBase
from bekb.mcp.server import build_server

QUERIES = [
    "saga compensation",
    "api versioning",
    "event sourcing projections",
    "database connection pooling",
    "jwt refresh tokens",
    "rate limiting",
]
CALLS: list[tuple[str, dict[str, Any]]] = [
    *(("search", {"query": q, "k": 5}) for q in QUERIES),
    *(("ask", {"question": f"how do I do {q}?"}) for q in QUERIES[:3]),
    ("list_sources", {}),
    (
        "get_document",
        {"path": "agents/plugins/backend-development/skills/saga-orchestration/SKILL.md:1-40"},
    ),
]


def test_parallel_sessions_get_the_serial_results(cited_kb: KnowledgeBase) -> None:
    server = build_server(cited_kb)

    async def serial() -> list[Any]:
        async with Client(server) as client:
            return [data(await client.call_tool(tool, args)) for tool, args in CALLS]

    async def parallel(sessions: int) -> list[list[Any]]:
        results: list[list[Any]] = [[None] * len(CALLS) for _ in range(sessions)]

        async def one_session(s: int) -> None:
            async with Client(server) as client, anyio.create_task_group() as calls:
                for i, (tool, args) in enumerate(CALLS):

                    async def call(
                        i: int = i, tool: str = tool, args: dict[str, Any] = args
                    ) -> None:
                        results[s][i] = data(await client.call_tool(tool, args))

                    calls.start_soon(call)

        async with anyio.create_task_group() as group:
            for s in range(sessions):
                group.start_soon(one_session, s)
        return results

    expected = run(serial)
    for got in run(lambda: parallel(3)):
        assert got == expected


def test_reindex_builds_in_the_background_while_searches_answer(tiny_kb: KnowledgeBase) -> None:
    tiny_kb.index()
    skill = tiny_kb.settings.root / "alpha/skills/caching/SKILL.md"
    skill.write_text(
        skill.read_text(encoding="utf-8") + "\n## Quagga keys\n\nZebra quagga eviction.\n",
        encoding="utf-8",
    )
    server = build_server(tiny_kb)

    async def main() -> dict[str, Any]:
        async with Client(server) as client:
            before = data(await client.call_tool("status", {}))
            started = data(await client.call_tool("reindex", {}))
            searches = []
            for _ in range(10):  # while the build runs: the previous index answers
                searches.append(
                    data(await client.call_tool("search", {"query": "stampede", "k": 2}))
                )
            await anyio.to_thread.run_sync(lambda: server.builds.wait(60))
            after = data(await client.call_tool("status", {}))
            found = data(
                await client.call_tool("search", {"query": "zebra quagga eviction", "k": 1})
            )
            again = data(await client.call_tool("reindex", {}))
            await anyio.to_thread.run_sync(lambda: server.builds.wait(60))
            return {"before": before, "started": started, "searches": searches, "after": after,
                    "found": found, "again": again}  # fmt: skip

    got = run(main, timeout=120)
    assert [f["path"] for f in got["before"]["stale"]] == ["alpha/skills/caching/SKILL.md"]
    assert got["started"]["started"] is True and got["started"]["build"]["running"] is True
    assert all(s["hits"][0]["path"] == "alpha/skills/caching/SKILL.md" for s in got["searches"])
    build = got["after"]["build"]
    assert (build["running"], build["error"], build["stage"]) == (False, None, "finish")
    assert build["report"]["files"]["changed"] == 1
    assert got["after"]["stale"] == []
    [hit] = got["found"]["hits"]
    assert hit["path"] == "alpha/skills/caching/SKILL.md" and "Zebra quagga" in hit["snippet"]
    assert got["again"]["started"] is True


def test_a_failed_reindex_is_reported(tiny_kb: KnowledgeBase) -> None:
    # The configured agent file is missing: the build fails in its thread.
    broken = tiny_kb.settings.model_copy(update={"agent_files": ("nope.md",)})
    server = build_server(KnowledgeBase.open(broken))

    async def main() -> Any:
        async with Client(server) as client:
            data(await client.call_tool("reindex", {}))
            await anyio.to_thread.run_sync(lambda: server.builds.wait(60))
            return await client.call_tool("status", {})

    status = run(main, timeout=60)
    # The index is still readable: status answers, and says why the build failed.
    got = data(status)
    assert "nope.md (agent_files) cannot be read" in got["build"]["error"]
    assert [a["path"] for a in got["unusable_agents"]] == ["nope.md"]
    build = server.builds.state()
    assert build["running"] is False and build["report"] is None
    assert "nope.md (agent_files) cannot be read" in (build["error"] or "")
