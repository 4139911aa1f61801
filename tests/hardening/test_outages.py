"""Remote faults: the Anthropic API failing every way it can (fake Messages API) and the Chroma
server going away under a long-lived MCP server. Clear one-line messages, the extractive
fallback where it applies, and recovery once the far end is back.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import pytest
from anthropic_server import BROKEN_STREAMS, free_port
from chroma_server import ChromaServer
from conftest import TINY_AGENT, HashingEmbedder
from hardening_support import HASHING_CLI, clean_env, in_process_cli, tally

from bekb import KnowledgeBase, Settings

pytestmark = pytest.mark.hardening

QUESTION = "compensating action for a failed saga step"
EXTRACTIVE = "From test-specialist's knowledge base, the most relevant passages:"
KEY = "sk-ant-hardening-0123456789"
AGAIN = "try again shortly"


@pytest.fixture
def indexed(tiny_kb: KnowledgeBase) -> KnowledgeBase:
    tiny_kb.index()
    return tiny_kb


@pytest.fixture
def ask(indexed, anthropic_server, monkeypatch, capsys):
    """`bekb ask QUESTION` in process, with a key and the fake API (exit, stdout, stderr)."""
    s = indexed.settings
    monkeypatch.setenv("BEKB_AGENT_FILES", TINY_AGENT)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_server.url)
    monkeypatch.setenv("BEKB_LLM_TIMEOUT", "0.3")
    run = in_process_cli(monkeypatch, capsys)

    def ask_(*extra: str) -> tuple[int, str, str]:
        return run("--root", s.root, "--index-dir", s.index_dir, "ask", QUESTION, *extra)

    return ask_


@pytest.mark.parametrize(
    ("fail", "notice"),
    [
        pytest.param(429, "Anthropic API rate limit (429 rate_limit_error): " + AGAIN, id="429"),
        pytest.param(529, "Anthropic API overloaded (529 overloaded_error): " + AGAIN, id="529"),
        pytest.param(500, "Anthropic API error (500 api_error): " + AGAIN, id="500"),
        pytest.param(
            "timeout", "Anthropic API timed out: try again, or raise llm_timeout", id="slow"
        ),
    ],
)
def test_a_transient_api_failure_falls_back_to_quoting_passages(
    ask, anthropic_server, fail, notice
):
    if fail == "timeout":
        anthropic_server.slow(5)
    else:
        anthropic_server.fail(fail)

    code, out, err = ask()

    assert (code, out.startswith(EXTRACTIVE)) == (0, True)
    assert err == f"warning: {notice} — showing the best passages instead.\n"
    assert KEY not in out + err
    tally("Anthropic API faults", 1)


def test_an_unreachable_api_falls_back_to_quoting_passages(ask, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{free_port()}")

    code, out, err = ask()

    assert (code, out.startswith(EXTRACTIVE)) == (0, True)
    assert err.startswith("warning: cannot reach the Anthropic API at 127.0.0.1: check the network")
    tally("Anthropic API faults", 1)


@pytest.mark.parametrize(
    ("status", "line"),
    [
        pytest.param(
            401, "error: Anthropic API rejected the key (401): check ANTHROPIC_API_KEY", id="401"
        ),
        pytest.param(
            403, "error: Anthropic API rejected the key (403): check ANTHROPIC_API_KEY", id="403"
        ),
        pytest.param(
            400,
            "error: Anthropic API refused the request (400 invalid_request_error): "
            "messages: at least one message is required",
            id="400",
        ),
    ],
)
def test_a_permanent_api_failure_is_one_line_exit_1_not_a_fallback(
    ask, anthropic_server, status, line
):
    anthropic_server.fail(status)

    assert ask() == (1, "", line + "\n")
    tally("Anthropic API faults", 1)


def test_a_stream_that_breaks_mid_answer_still_shows_the_passages(ask, anthropic_server):
    anthropic_server.reply(
        "Undo the completed steps ", "in reverse", stream_error="overloaded_error"
    )

    code, out, err = ask()

    assert code == 0
    assert EXTRACTIVE in out  # what Claude said before the break is not the answer
    assert err.startswith("warning: Anthropic API overloaded (overloaded_error)")
    tally("Anthropic API faults", 1)


@pytest.mark.parametrize("breakage", list(BROKEN_STREAMS))
def test_a_stream_cut_or_garbled_mid_answer_is_never_shown_as_complete(
    ask, anthropic_server, breakage
):
    after, notice = BROKEN_STREAMS[breakage]
    anthropic_server.broken(breakage, after, "Undo the completed steps", "in reverse.", stall=5)

    code, out, err = ask()

    assert code == 0
    assert EXTRACTIVE in out  # the passages, not the half-answer as if it were whole
    assert err == f"warning: {notice} — showing the best passages instead.\n"
    tally("Anthropic API faults", 1)


def test_requiring_claude_means_a_transient_failure_is_an_error_not_a_fallback(
    ask, anthropic_server
):
    anthropic_server.fail(529)

    code, out, err = ask("--llm", "anthropic")

    assert (code, out) == (1, "")
    assert err == "error: Anthropic API overloaded (529 overloaded_error): " + AGAIN + "\n"
    tally("Anthropic API faults", 1)


def test_requiring_claude_without_a_key_is_a_usage_error(ask, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    assert ask("--llm", "anthropic") == (
        2,
        "",
        "error: --llm anthropic needs ANTHROPIC_API_KEY\n",
    )


# -- the Chroma server goes away under a long-lived MCP server ---------------------------------


def test_mcp_server_reports_a_chroma_outage_per_call_and_recovers(tiny_root, tmp_path):
    from mcp import ClientSession, StdioServerParameters, stdio_client

    data = tmp_path / "chroma"
    server = ChromaServer(data).start()
    try:
        settings = Settings.load(
            root=tiny_root,
            index_dir=tmp_path / "index",
            agent_files=(TINY_AGENT,),
            chroma_url=server.url,
        )
        KnowledgeBase.open(settings, embedder=HashingEmbedder()).index()
        params = StdioServerParameters(
            command=sys.executable,
            args=[
                *(str(HASHING_CLI), "--root", str(tiny_root), "--index-dir", str(tmp_path / "i")),
                *("--chroma-url", server.url, "mcp"),
            ],
            env=clean_env({"BEKB_AGENT_FILES": TINY_AGENT}),
            cwd=tmp_path,
        )
        port = server.port

        async def session_script() -> list[Any]:
            nonlocal server
            out = []
            async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                out.append(await s.call_tool("search", {"query": "saga compensation", "k": 2}))
                server.stop()
                out.append(await s.call_tool("search", {"query": "saga compensation", "k": 2}))
                out.append(await s.call_tool("ask", {"question": QUESTION}))
                out.append(await s.call_tool("list_sources", {}))
                server = ChromaServer(data, port=port).start()
                out.append(await s.call_tool("search", {"query": "saga compensation", "k": 2}))
            return out

        async def bounded() -> list[Any]:
            with anyio.fail_after(120):
                return await session_script()

        before, *down, after = anyio.run(bounded)
    finally:
        server.stop()

    assert not before.is_error and not after.is_error
    assert before.structured_content == after.structured_content
    unreachable = f"cannot reach the Chroma server at {settings.chroma_url}: is `chroma run` up?"
    assert [(r.is_error, _text(r)) for r in down] == [(True, unreachable)] * 3
    tally("Chroma server outage", len(down) + 2)


def _text(result: Any) -> str:
    [block] = result.content
    return str(block.text)
