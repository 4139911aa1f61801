"""Helpers for driving `bekb mcp` with the SDK's own clients."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from conftest import subprocess_env
from mcp_types import CallToolResult, TextContent

from bekb import Settings

SAGA = "agents/plugins/backend-development/skills/saga-orchestration/"
SAGA_SKILL = SAGA + "SKILL.md"
SESSION_TIMEOUT = 180  # seconds; the first call loads the embedding model


def bekb_args(settings: Settings, *extra: str) -> list[str]:
    """`python -m bekb … mcp …` arguments for the index of `settings`."""
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


def env() -> dict[str, str]:
    """The test process's environment without the developer's settings (no API key)."""
    return subprocess_env()


def run(main: Callable[[], Awaitable[Any]], timeout: float = SESSION_TIMEOUT) -> Any:
    """`main()` on an event loop, failing after `timeout` seconds."""

    async def bounded() -> Any:
        with anyio.fail_after(timeout):
            return await main()

    return anyio.run(bounded)


def data(result: CallToolResult) -> Any:
    """The structured result, after checking the text block carries the same compact JSON."""
    assert not result.is_error, result.content
    [block] = result.content
    assert isinstance(block, TextContent)
    compact = json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    assert block.text == compact  # the same JSON, without the SDK's indentation
    return result.structured_content


def error(result: CallToolResult) -> str:
    """The one-line text of an error result (no traceback, no library's text)."""
    assert result.is_error
    [block] = result.content
    assert isinstance(block, TextContent)
    text = block.text
    assert "\n" not in text
    assert "Traceback" not in text
    assert "pydantic" not in text and "errors.pydantic.dev" not in text
    assert "Error executing tool" not in text
    assert "bekb index" not in text  # an agent has tools, not a shell
    return text
