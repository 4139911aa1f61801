"""How the MCP server is reached: stdio (strict about bad input) or streamable HTTP.

Written by hand around the SDK's pieces because the SDK's own runners fall short where an
agent host meets them: its stdio loop drops a line that is not JSON-RPC without a reply
(the client waits forever) and dies on a lone surrogate in a result; its HTTP runner
prints nothing when it is up and exits 3 with uvicorn's text on a busy port.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ListenError(OSError):
    """The HTTP port cannot be listened on (in use, not permitted, no such address)."""


def serve_stdio(server: MCPServer) -> None:
    """Serve JSON-RPC lines on stdin/stdout until stdin closes; a line that is no message
    gets a JSON-RPC error reply (-32700 not JSON, -32600 not a request)."""
    anyio.run(_stdio, server)


def serve_http(server: MCPServer, host: str, port: int) -> None:
    """Serve streamable HTTP at http://HOST:PORT/mcp, saying so on stderr once it is up
    (port 0: a free one). Raises ListenError when the address cannot be bound."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # TIME_WAIT from an earlier run is no reason to refuse; a live listener still is.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ListenError(f"cannot listen on {host}:{port}: {why}") from None
    sock.listen(2048)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/mcp"
    app = server.streamable_http_app(host=host)

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(f"listening on {url}", file=sys.stderr, flush=True)

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    AnnouncingServer(config).run(sockets=[sock])


async def _stdio(server: MCPServer) -> None:
    lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async runs, too
    async with stdio_server() as (read_stream, raw_write):
        write_stream = _ScrubbingWriter(raw_write)
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def replying_to_bad_lines() -> None:
            async with send:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        item = _scrubbed_message(item) or item
                    if not isinstance(item, Exception):
                        await send.send(item)
                        continue
                    try:
                        await write_stream.send(SessionMessage(_error_reply(item)))
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                        return

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(replying_to_bad_lines)
            options = lowlevel.create_initialization_options()
            await lowlevel.run(receive, write_stream, options)
            tasks.cancel_scope.cancel()


def _scrubbed_message(exc: Exception) -> SessionMessage | None:
    """The message of a line refused only for a lone surrogate (an escape JSON allows and
    UTF-8 cannot carry), with it replaced; None for a line that is no message at all."""
    errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else []
    line = errors[0].get("input") if errors and errors[0]["type"] == "json_invalid" else None
    if not isinstance(line, str | bytes):
        return None
    try:
        message = jsonrpc_message_adapter.validate_python(_scrub(json.loads(line)), by_name=False)
    except (ValueError, ValidationError):
        return None
    return SessionMessage(message)


def _error_reply(exc: Exception) -> JSONRPCError:
    """-32700 for a line that is not JSON; -32600 (with the id when one is readable) for
    JSON that is no JSON-RPC message."""
    errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else []
    if not errors or any(e["type"] == "json_invalid" for e in errors):
        return JSONRPCError(
            jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message="Parse error")
        )
    request_id = None
    for error in errors:  # a field missing at depth 2 carries the whole object as its input
        if (
            error["type"] == "missing"
            and len(error["loc"]) == 2
            and isinstance(error["input"], dict)
        ):
            candidate = error["input"].get("id")
            if isinstance(candidate, str | int) and not isinstance(candidate, bool):
                request_id = candidate
            break
    return JSONRPCError(
        jsonrpc="2.0",
        id=request_id,
        error=ErrorData(code=INVALID_REQUEST, message="Invalid Request"),
    )


class _ScrubbingWriter:
    """The stdout stream, replacing what UTF-8 cannot carry (lone surrogates from a
    document) instead of letting the writer die and the server with it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage) -> None:
        try:
            item.message.model_dump_json(by_alias=True, exclude_unset=True)
        except PydanticSerializationError:
            data = _scrub(item.message.model_dump(by_alias=True, exclude_unset=True))
            message = jsonrpc_message_adapter.validate_python(data, by_name=False)
            item = SessionMessage(message, metadata=item.metadata)
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _ScrubbingWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
