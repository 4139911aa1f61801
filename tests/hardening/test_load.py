"""Load: eight searches at once during a rebuild, 200 asks in a row without memory growth, and
an MCP server answering 100 requests in a row.

tests/test_concurrency.py runs eight searching *processes* through a model switch; here eight
threads share one process (one Chroma client per path, as an application embedding bekb has)
through an incremental update and a full rebuild.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from anthropic_server import Cite, text_block
from conftest import TINY_AGENT, HashingEmbedder, assert_consistent
from hardening_support import HASHING_CLI, Zygote, clean_env, open_fds, rss_bytes, tally

from bekb import KnowledgeBase

pytestmark = pytest.mark.hardening

READERS = 8
NOTES = "alpha/skills/sagas/references"
QUERIES = ("saga compensation", "cache stampede", "token expiry", "reserve charge ship")


def add_notes(root: Path, count: int, word: str) -> None:
    for i in range(count):
        body = "\n\n".join(
            f"## Part {j}\n\nStep {i}.{j}: reserve, charge, ship; {word} on failure."
            for j in range(4)
        )
        (root / NOTES / f"note-{i:03}.md").write_text(f"# Note {i}\n\n{body}\n")


@pytest.mark.parametrize("full", [False, True], ids=["incremental", "full-rebuild"])
@pytest.mark.timeout(120)
def test_eight_threads_search_without_a_failure_during_a_rebuild(tiny_root, tiny_settings, full):
    add_notes(tiny_root, 30, "compensate")
    KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder()).index()
    add_notes(tiny_root, 40, "quokkafy")  # changes 30 notes, adds 10
    done = threading.Event()
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def reader(n: int) -> None:
        kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
        failures: list[str] = []
        searches = empty = 0
        while True:
            finished = done.is_set()
            try:
                hits = kb.search(QUERIES[(n + searches) % len(QUERIES)], k=5)
                empty += not hits
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            searches += 1
            if finished:
                break
            time.sleep(0.01)
        last = [h.path for h in kb.search("quokkafy", k=3)]
        with lock:
            results.append(
                {"failures": failures[:3], "empty": empty, "searches": searches, "last": last}
            )

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    for thread in threads:
        thread.start()
    zygote = Zygote()
    try:
        outcome = zygote.build(tiny_settings, kill_at=None, after=None, full=full, delay=0.003)
    finally:
        zygote.close()
        done.set()
        for thread in threads:
            thread.join(timeout=60)

    assert outcome.startswith("finished"), outcome
    assert [(r["failures"], r["empty"]) for r in results] == [([], 0)] * READERS
    assert min(r["searches"] for r in results) >= 5
    assert all(r["last"] and r["last"][0].startswith(f"{NOTES}/note-") for r in results)
    assert_consistent(KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder()))
    tally("load: concurrent searches during a rebuild", sum(r["searches"] for r in results))


ASKS = 200
QUESTIONS = (
    "compensating action for a failed saga step",
    "how do I protect a cache from a stampede",
    "when do access tokens expire",
    "what does the server health check return",
)


def test_200_asks_in_a_row_do_not_grow_memory_or_file_descriptors(tiny_kb, anthropic_server):
    tiny_kb.index()
    kb = KnowledgeBase.open(
        tiny_kb.settings,
        embedder=HashingEmbedder(),
        anthropic_api_key="sk-ant-test",
        anthropic_base_url=anthropic_server.url,
        llm_timeout=5,
    )
    anthropic_server.reply(text_block("Compensate in reverse order.", Cite(0)))

    def ask(n: int) -> str:
        return kb.ask(QUESTIONS[n % len(QUESTIONS)], use_llm=n % 2 == 0).mode

    for n in range(20):  # warm up: imports, first snapshot, SDK client pools
        ask(n)
    gc.collect()
    rss, fds = rss_bytes(), open_fds()

    modes = [ask(n) for n in range(ASKS)]

    gc.collect()
    grown = rss_bytes() - rss
    assert set(modes) <= {"llm", "extractive", "abstain"} and modes.count("llm") >= ASKS // 4
    assert grown < 50 * 2**20, f"RSS grew {grown / 2**20:.1f} MB over {ASKS} asks"
    assert open_fds() - fds <= 8, f"{open_fds() - fds} file descriptors leaked"
    tally("load: sequential asks", ASKS)


MCP_REQUESTS = 100


def _server_pid(marker: str) -> int:
    """The pid of the MCP server process whose command line mentions `marker`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "mcp" in cmdline and str(HASHING_CLI) in cmdline:
            return int(entry.name)
    raise AssertionError("MCP server process not found")


def test_the_mcp_server_answers_100_requests_in_a_row(tiny_kb, tmp_path):
    from mcp import ClientSession, StdioServerParameters, stdio_client

    tiny_kb.index()
    s = tiny_kb.settings
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(HASHING_CLI), "--root", str(s.root), "--index-dir", str(s.index_dir), "mcp"],
        env=clean_env({"BEKB_AGENT_FILES": TINY_AGENT}),
        cwd=tmp_path,
    )
    calls: list[tuple[str, dict[str, Any]]] = [
        ("search", {"query": "saga compensation", "k": 3}),
        ("ask", {"question": QUESTIONS[0]}),
        ("list_sources", {}),
        ("get_document", {"path": "alpha/skills/sagas/SKILL.md"}),
        ("search", {"query": "サガ 🙂 \u202e", "k": 100}),
        ("get_document", {"path": "../outside/secrets.md"}),
        ("search", {"query": "   "}),
        ("ask", {"question": "x" * 4001}),
        ("search", {"query": "cache stampede", "k": 0}),
        ("search", {"query": "token expiry", "k": 1}),
    ]
    failing = {5, 6, 7, 8}

    async def session() -> tuple[list[Any], list[int]]:
        out, rss = [], []
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            pid = _server_pid(str(s.index_dir))
            for n in range(MCP_REQUESTS):
                tool, arguments = calls[n % len(calls)]
                out.append(await client.call_tool(tool, arguments))
                if n in (19, MCP_REQUESTS - 1):
                    rss.append(rss_bytes(pid))
        return out, rss

    async def bounded() -> tuple[list[Any], list[int]]:
        with anyio.fail_after(120):
            return await session()

    started = time.monotonic()
    results, rss = anyio.run(bounded)
    seconds = time.monotonic() - started

    errors = [n for n, r in enumerate(results) if r.is_error]
    assert errors == [n for n in range(MCP_REQUESTS) if n % len(calls) in failing]
    for n in errors:
        [block] = results[n].content
        assert "\n" not in block.text and "Traceback" not in block.text
    answers = [r.structured_content for r in results if not r.is_error]
    assert all(json.dumps(a) for a in answers) and len(answers) == 60
    assert results[0].structured_content == results[len(calls)].structured_content
    assert rss[1] - rss[0] < 30 * 2**20, f"server RSS grew {(rss[1] - rss[0]) / 2**20:.1f} MB"
    assert seconds < 90
    assert os.path.exists(s.index_dir)
    tally("load: MCP requests in a row", MCP_REQUESTS)
