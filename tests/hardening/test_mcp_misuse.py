"""MCP misuse (second round): over raw stdio a line that is no JSON-RPC message gets an
error reply (the client is never left waiting) and the server keeps serving after it;
`get_document` on a file that stopped being UTF-8 is one plain error line."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from hardening_support import tally
from mcp import Client
from mcp_support import bekb_args, env, error

from bekb import KnowledgeBase, Settings
from bekb.mcp.server import build_server

pytestmark = pytest.mark.hardening

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def _replies(
    settings: Settings, folder: Path, lines: list[str], until: set[int]
) -> list[dict[str, object]]:
    """The JSON replies of `bekb mcp` to `lines`, read until every id in `until` has one
    (stdin stays open meanwhile: closing it ends the session, in-flight calls with it)."""
    process = subprocess.Popen(
        [sys.executable, *bekb_args(settings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        cwd=folder,
        text=True,
    )
    assert process.stdin and process.stdout
    process.stdin.write("".join(line + "\n" for line in lines))
    process.stdin.flush()
    replies: list[dict[str, object]] = []
    deadline = time.monotonic() + 120
    while until - {r.get("id") for r in replies}:
        assert time.monotonic() < deadline, replies
        ready, _, _ = select.select([process.stdout], [], [], 1)
        if ready:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else ""
            replies.append(json.loads(line))
    process.stdin.close()
    process.wait(timeout=30)
    assert process.stderr and "Traceback" not in process.stderr.read()
    return replies


def test_bad_lines_get_error_replies_and_the_session_goes_on(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    replies = _replies(
        tiny_settings,
        tmp_path,
        [
            json.dumps(INITIALIZE),
            '{"jsonrpc": "2.0", "method": "notifications/initialized"}',
            "this is not json",
            '{"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": "\\ud800"',
            "[1, 2]",
            '{"jsonrpc": "2.0", "id": 8}',
            '{"jsonrpc": "2.0", "id": 9, "method": "tools/call", '
            '"params": {"name": "search", "arguments": {"query": "\\ud800"}}}',
            json.dumps(LIST_TOOLS),
        ],
        until={1, 2, 8, 9},
    )
    by_id = {r.get("id"): r for r in replies if r.get("id") is not None}
    errors = [r["error"] for r in replies if "error" in r]
    codes = sorted(e["code"] for e in errors)  # type: ignore[index]
    assert codes.count(-32700) >= 2  # the text, the unterminated object
    assert -32600 in codes  # the array, the object without a method
    assert by_id[8]["error"]["code"] == -32600  # type: ignore[index]
    assert 9 in by_id  # an escaped lone surrogate is replaced and answered, not dropped
    assert {t["name"] for t in by_id[2]["result"]["tools"]} >= {"search", "reindex"}  # type: ignore[index]
    tally("MCP misuse", 5)


def test_a_document_that_stopped_being_utf8_is_one_error_line(tiny_kb: KnowledgeBase) -> None:
    tiny_kb.index()
    (tiny_kb.settings.root / "alpha/skills/caching/SKILL.md").write_bytes(
        b"# Caching\n\xff\xfe\x00bad"
    )
    server = build_server(tiny_kb)

    async def main() -> object:
        async with Client(server) as client:
            return await client.call_tool("get_document", {"path": "alpha/skills/caching/SKILL.md"})

    message = error(anyio.run(main))  # type: ignore[arg-type]
    assert message.startswith("cannot read alpha/skills/caching/SKILL.md")
    tally("MCP misuse", 1)
