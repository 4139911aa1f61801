"""A loopback Messages-API server with canned replies, so tests run the real anthropic SDK.

Usage (the `anthropic_server` fixture does the start/stop)::

    server = FakeAnthropic().start()
    server.reply("FastAPI injects ", text_block("with Depends.", Cite(0)))
    client = anthropic.Anthropic(api_key="k", base_url=server.url)
    ...
    server.requests[0].body["messages"]  # what the SDK sent
    server.stop()

Replies are queued: each request takes the next one and the last one repeats, so
`server.fail(529)` followed by `server.reply(...)` answers 529 once, then succeeds.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    400: "messages: at least one message is required",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "model: claude-unknown",
    429: "Number of request tokens has exceeded your per-minute rate limit",
    500: "Internal server error",
    529: "Overloaded",
}


# Ways a stream breaks mid-answer (`FakeAnthropic.broken`), after how many events, and the
# AnswerError bekb makes of each.
BROKEN_STREAMS = {
    "cut": (5, "the Anthropic API stream broke off before the answer was complete"),
    "garbage": (4, "the Anthropic API sent a malformed stream: try again"),
    "stall": (
        4,
        "the Anthropic API stopped answering mid-stream (timed out): try again, or raise "
        "llm_timeout",
    ),
}


@dataclass(frozen=True)
class Cite:
    """A `search_result_location` citation of the request's N-th search result.

    `source` and `title` are copied from that search result as the SDK sent it;
    `cited_text` defaults to its first text block.
    """

    search_result_index: int
    cited_text: str | None = None


@dataclass(frozen=True)
class Block:
    """A text block of a canned reply, streamed as `parts` (one text delta each)."""

    parts: tuple[str, ...]
    citations: tuple[Cite | dict[str, Any], ...] = ()

    @property
    def text(self) -> str:
        return "".join(self.parts)


def text_block(text: str | Sequence[str], *citations: Cite | dict[str, Any]) -> Block:
    """A reply block; a plain string is streamed word by word, a sequence part by part.

    A dict citation is sent as it is (for `char_location` or unknown kinds).
    """
    parts = tuple(re.findall(r"\S+\s*|\s+", text)) if isinstance(text, str) else tuple(text)
    return Block(parts=parts or ("",), citations=citations)


@dataclass(frozen=True)
class ToolUse:
    """A `tool_use` block of a canned reply: Claude calling a tool with `input`."""

    name: str
    input: dict[str, Any]
    id: str = "toolu_01"


@dataclass(frozen=True)
class Reply:
    """One canned response: text (and tool use) blocks, or an error status, optionally after
    a delay; a stream can be made to break after its first `break_after` events."""

    blocks: tuple[Block | ToolUse, ...] = ()
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    delay: float = 0.0
    # Send this error type as an SSE `error` event after the first block (a 200 stream).
    stream_error: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    # A stream that goes wrong after this many events: "cut" (the connection closes, no
    # message_stop), "garbage" (a data line that is not JSON), "stall" (silence for
    # `delay` seconds, for read timeouts).
    break_after: int | None = None
    breakage: str = ""
    stall: float = 0.0
    usage: tuple[tuple[str, int], ...] = ()

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeAnthropic:
    """A threaded HTTP server on 127.0.0.1 speaking enough of `POST /v1/messages`."""

    model: str = "claude-sonnet-4-5"
    requests: list[RecordedRequest] = field(default_factory=list)
    # Answers a request from its body before the queue is looked at (None: use the queue):
    # for replies that depend on what was asked, as in scripts/bench_expand.py.
    responder: Callable[[dict[str, Any]], Reply | None] | None = None
    _replies: deque[Reply] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeAnthropic:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a slow reply
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuring replies -------------------------------------------------------------

    def reply(
        self,
        *blocks: Block | ToolUse | str,
        stream_error: str = "",
        usage: dict[str, int] | None = None,
    ) -> None:
        """Queue a successful reply made of these blocks (a string: an uncited text block)."""
        made = tuple(b if isinstance(b, Block | ToolUse) else text_block(b) for b in blocks)
        self.queue(
            Reply(blocks=made, stream_error=stream_error, usage=tuple((usage or {}).items()))
        )

    def broken(self, breakage: str, after: int, *blocks: Block | str, stall: float = 0.0) -> None:
        """Queue a streamed reply that breaks (`cut`, `garbage`, `stall`) after `after` events."""
        made = tuple(b if isinstance(b, Block) else text_block(b) for b in blocks)
        self.queue(Reply(blocks=made, break_after=after, breakage=breakage, stall=stall))

    def fail(
        self,
        status: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        retry_after_ms: int = 1,
    ) -> None:
        """Queue an Anthropic-shaped error response; `retry-after-ms` keeps SDK retries fast."""
        self.queue(
            Reply(
                status=status,
                error_type=error_type or ERROR_TYPES.get(status, "api_error"),
                error_message=message or ERROR_MESSAGES.get(status, f"error {status}"),
                headers=(("retry-after-ms", str(retry_after_ms)),),
            )
        )

    def slow(self, seconds: float, *blocks: Block | str) -> None:
        """Queue a reply that waits `seconds` before answering (for client timeouts)."""
        made = tuple(b if isinstance(b, Block) else text_block(b) for b in blocks)
        self.queue(Reply(blocks=made or (text_block("late"),), delay=seconds))

    def queue(self, reply: Reply) -> None:
        with self._lock:
            self._replies.append(reply)

    # -- serving ---------------------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._lock:
            if not self._replies:
                return Reply(blocks=(text_block("OK"),))
            return self._replies.popleft() if len(self._replies) > 1 else self._replies[0]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _message(self, reply: Reply, body: dict[str, Any], *, streaming: bool) -> dict[str, Any]:
        results = _search_results(body)
        content = [] if streaming else [_block_json(block, results) for block in reply.blocks]
        usage = {"input_tokens": 100, "output_tokens": 1 if streaming else 20}
        usage.update(dict(reply.usage))
        return {
            "id": f"msg_{len(self.requests):04d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", self.model),
            "content": content,
            "stop_reason": None if streaming else reply.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

    def _events(self, reply: Reply, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        results = _search_results(body)
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {"type": "message_start", "message": self._message(reply, body, streaming=True)},
            ),
            ("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(reply.blocks):
            if isinstance(block, ToolUse):
                start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
                events.append(
                    (
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": start},
                    )
                )
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block.input)}
                events.append(("content_block_delta", _delta(index, delta)))
                events.append(
                    ("content_block_stop", {"type": "content_block_stop", "index": index})
                )
                continue
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            for cite in block.citations:
                delta = {"type": "citations_delta", "citation": _citation(cite, results)}
                events.append(("content_block_delta", _delta(index, delta)))
            for part in block.parts:
                delta = {"type": "text_delta", "text": part}
                events.append(("content_block_delta", _delta(index, delta)))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            if reply.stream_error and index == 0:
                error = {"type": reply.stream_error, "message": reply.stream_error}
                events.append(("error", {"type": "error", "error": error}))
                return events
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": 20, **dict(reply.usage)},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _block_json(block: Block | ToolUse, results: list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(block, ToolUse):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return {
        "type": "text",
        "text": block.text,
        "citations": [_citation(c, results) for c in block.citations] or None,
    }


def _search_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every search result the request carries, in order: top level, then inside tool
    results (the order `search_result_index` counts in)."""
    found: list[dict[str, Any]] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if block.get("type") == "search_result":
                found.append(block)
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                found.extend(b for b in block["content"] if b.get("type") == "search_result")
    return found


def _citation(cite: Cite | dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(cite, dict):
        return cite
    index = cite.search_result_index
    result = results[index] if 0 <= index < len(results) else {}
    first = (result.get("content") or [{"text": ""}])[0]
    return {
        "type": "search_result_location",
        "cited_text": first["text"] if cite.cited_text is None else cite.cited_text,
        "search_result_index": index,
        "source": result.get("source", ""),
        "title": result.get("title"),
        "start_block_index": 0,
        "end_block_index": 1,
    }


def _handler_for(server: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep pytest output clean

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                body = {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            server._record(RecordedRequest("POST", self.path, headers, body))
            if not (headers.get("x-api-key") or headers.get("authorization")):
                self._error(401, "authentication_error", "x-api-key header is required", ())
                return
            if self.path.split("?")[0] != "/v1/messages":
                self._error(404, "not_found_error", f"Not found: {self.path}", ())
                return
            answered = server.responder(body) if server.responder is not None else None
            reply = answered or server._next_reply()
            if reply.delay and server._stopping.wait(reply.delay):
                return
            if reply.status >= 400:
                self._error(reply.status, reply.error_type, reply.error_message, reply.headers)
            elif body.get("stream"):
                self._stream(server._events(reply, body), reply)
            else:
                self._json(200, server._message(reply, body, streaming=False), ())

        def _error(
            self, status: int, kind: str, message: str, headers: Sequence[tuple[str, str]]
        ) -> None:
            error = {
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": "req_fake",
            }
            self._json(status, error, headers)

        def _json(
            self, status: int, payload: dict[str, Any], headers: Sequence[tuple[str, str]]
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_fake")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self._write(data)

        def _stream(self, events: list[tuple[str, dict[str, Any]]], reply: Reply) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("request-id", "req_fake")
            self.end_headers()
            for sent, (name, payload) in enumerate(events):
                if reply.break_after is not None and sent == reply.break_after:
                    if reply.breakage == "garbage":
                        self._write(b"event: content_block_delta\ndata: {not json\n\n")
                    elif reply.breakage == "stall":
                        server._stopping.wait(reply.stall)
                    return  # "cut": the connection closes without message_stop
                if not self._write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()):
                    return

        def _write(self, data: bytes) -> bool:
            try:
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return False  # the client gave up (a timeout test)
            return True

    return Handler


def free_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening (for connection-refused tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
