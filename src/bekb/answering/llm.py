"""Claude answers over hits passed as citable search results, streamed, with follow-up
searches through a `search` tool; structured replies (query expansion); maps SDK errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anthropic
import pydantic
from anthropic.types import (
    CitationsSearchResultLocation,
    MessageParam,
    SearchResultBlockParam,
    TextBlock,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlock,
)

from bekb.domain import Citation, Hit, Turn, Usage
from bekb.errors import AnswerError, one_line

MESSAGE_LIMIT = 200
# Statuses the SDK itself retries: still failing after its retries means "try again later".
_TRANSIENT_STATUSES = frozenset({408, 409, 429})
_TRANSIENT_TYPES = frozenset({"rate_limit_error", "overloaded_error", "api_error", "timeout_error"})

TextCallback = Callable[[str], None]
SearchCallback = Callable[[str], Sequence[Hit]]
Model = TypeVar("Model", bound=pydantic.BaseModel)

# Marks the end of a prefix the API may cache (tools, then system): the persona and the
# tool definitions are the same for every question, so later calls read them from cache.
CACHED: Any = {"type": "ephemeral"}
SEARCH_TOOL: ToolParam = {
    "name": "search",
    "description": "Search the knowledge base again when the passages you were given do not "
    "cover the question or a part of it. Returns the best passages for the query as search "
    "results you can cite. Use the field's standard terms in the query.",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to look for."}},
        "required": ["query"],
    },
    "cache_control": CACHED,
}
SEARCH_LIMIT = "search limit reached: answer from the passages you have."
NOTHING_FOUND = "no passages found for this query."


@dataclass(frozen=True)
class ClaudeAnswer:
    """Claude's answer: text with ` [n]` markers, the citations they number, the follow-up
    searches it made, and the tokens the calls took."""

    text: str
    citations: tuple[Citation, ...]
    searches: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)


def make_client(
    *, api_key: str, base_url: str | None, timeout: float, max_retries: int = 2
) -> anthropic.Anthropic:
    """An Anthropic client; `base_url=None` means the SDK's default (or ANTHROPIC_BASE_URL)."""
    return anthropic.Anthropic(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


def converse(
    client: anthropic.Anthropic,
    *,
    model: str,
    max_tokens: int,
    system: str,
    question: str,
    hits: Sequence[Hit],
    on_text: TextCallback | None = None,
    search: SearchCallback | None = None,
    max_searches: int = 0,
    on_search: Callable[[str], None] | None = None,
    history: Sequence[Turn] = (),
) -> ClaudeAnswer:
    """Ask Claude `question` over `hits`, streaming the answer to `on_text`.

    Each hit goes in as a `search_result` block with citations enabled. With `search`,
    Claude also gets a `search` tool and may call it up to `max_searches` times before it
    answers (each query goes to `on_search` first); the passages found come back as
    `search_result` blocks inside the tool result. Citations count search results across
    the whole request, so they resolve to the hits of the question and of every search.
    The answer is the streamed text with ` [n]` markers after each cited block, sent to
    `on_text` as soon as the block is complete; citations are numbered in order of first
    appearance, one per passage, and span the lines of the text Claude quoted. `history`
    are earlier turns of a conversation. The persona and the tool are marked cacheable.

    Raises:
        AnswerError: the API call failed after the SDK's retries, or the stream broke off
            before its end (`transient` says whether a later retry may work).
    """
    shown = list(hits)  # every search result of the request, in the order the API counts
    citer = _Citer(shown, on_text)
    messages: list[MessageParam] = [*_history(history), _user_message(question, hits)]
    tools = search is not None and max_searches > 0
    searches: list[str] = []
    usage = Usage()
    # One round per search allowed, one to answer, one more if Claude asks past the limit.
    for _round in range(max_searches + 2 if tools else 1):
        final = _stream_round(
            client,
            citer,
            model=model,
            max_tokens=max_tokens,
            system=system,
            messages=messages,
            tools=tools,
            answer_now=len(searches) >= max_searches,
        )
        usage += _usage(final.usage)
        calls = [b for b in final.content if isinstance(b, ToolUseBlock)]
        if final.stop_reason != "tool_use" or not calls or search is None:
            break
        results: list[ToolResultBlockParam] = []
        for call in calls:
            query = _query(call)
            if len(searches) >= max_searches or not query:
                text = SEARCH_LIMIT if query else "the search needs a `query` string."
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": text,
                        "is_error": True,
                    }
                )
                continue
            searches.append(query)
            if on_search is not None:
                on_search(query)
            found = list(search(query))
            shown.extend(found)
            results.append(_tool_result(call.id, found))
        messages.append({"role": "assistant", "content": final.content})
        messages.append({"role": "user", "content": results})
    citer.flush()
    return ClaudeAnswer(citer.answer, tuple(citer.citations), tuple(searches), usage)


def _stream_round(
    client: anthropic.Anthropic,
    citer: _Citer,
    *,
    model: str,
    max_tokens: int,
    system: str,
    messages: list[MessageParam],
    tools: bool,
    answer_now: bool,
) -> anthropic.types.Message:
    """One streamed request; text goes through `citer`. The final message."""
    extra: dict[str, Any] = {}
    if tools:
        # Past the limit the tool stays defined (earlier turns use it) but cannot be chosen.
        extra["tools"] = [SEARCH_TOOL]
        extra["tool_choice"] = {"type": "none"} if answer_now else {"type": "auto"}
    with (
        map_api_errors(),
        client.messages.stream(
            model=model,
            max_tokens=max_tokens,
            system=[{"type": "text", "text": system, "cache_control": CACHED}],
            messages=messages,
            **extra,
        ) as stream,
    ):
        for event in stream:
            if event.type == "text":
                citer.text(event.text)
            elif event.type == "content_block_stop" and isinstance(event.content_block, TextBlock):
                citer.block(event.content_block)
        final = stream.get_final_message()
    if final.stop_reason is None:  # the stream ended without its message_stop
        raise AnswerError(
            "the Anthropic API stream broke off before the answer was complete", transient=True
        )
    return final


def _query(call: ToolUseBlock) -> str:
    value = call.input.get("query") if isinstance(call.input, dict) else None
    return " ".join(value.split()) if isinstance(value, str) else ""


def _tool_result(tool_use_id: str, hits: Sequence[Hit]) -> ToolResultBlockParam:
    if not hits:
        return {"type": "tool_result", "tool_use_id": tool_use_id, "content": NOTHING_FOUND}
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": [search_result(hit) for hit in hits],
    }


def _history(turns: Sequence[Turn]) -> list[MessageParam]:
    messages: list[MessageParam] = []
    for turn in turns:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": turn.answer or "(no answer)"})
    return messages


def _usage(usage: anthropic.types.Usage) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens or 0,
        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
    )


def structured_reply(
    client: anthropic.Anthropic,
    *,
    model: str,
    max_tokens: int,
    system: str,
    prompt: str,
    output_format: type[Model],
) -> tuple[Model | None, Usage]:
    """One structured-output call: Claude's reply parsed as `output_format` (None when it
    sent nothing to parse), and the tokens it took.

    Raises:
        AnswerError: the call failed, or the reply does not fit `output_format`.
    """
    with map_api_errors():
        try:
            message = client.messages.parse(
                model=model,
                max_tokens=max_tokens,
                system=system,
                messages=[{"role": "user", "content": prompt}],
                output_format=output_format,
            )
        except pydantic.ValidationError as exc:
            raise AnswerError(
                f"Claude's reply did not fit the expected shape ({exc.error_count()} error(s))",
                transient=True,
            ) from exc
    return message.parsed_output, _usage(message.usage)


class _Citer:
    """Numbers citations as text blocks complete and passes the text on with its markers.

    A block's trailing whitespace is held back until the block ends, so that its markers
    come right after its last word, in the stream as in the returned text.
    """

    def __init__(self, hits: Sequence[Hit], on_text: TextCallback | None) -> None:
        self._hits = hits
        self._emit = on_text or (lambda _text: None)
        self._numbers: dict[int, int] = {}
        self._held = ""
        self.citations: list[Citation] = []
        self.answer = ""

    def text(self, delta: str) -> None:
        body = (self._held + delta).rstrip()
        self._held = (self._held + delta)[len(body) :]
        if body:
            self._say(body)

    def block(self, block: TextBlock) -> None:
        cited: list[int] = []
        for location in block.citations or ():
            # Only search results are sent, so other citation kinds cannot point at a hit.
            if not isinstance(location, CitationsSearchResultLocation):
                continue
            index = location.search_result_index
            if not 0 <= index < len(self._hits):
                continue
            if index not in self._numbers:
                self._numbers[index] = len(self._numbers) + 1
                hit = self._hits[index]
                self.citations.append(_citation(self._numbers[index], hit, location.cited_text))
            if self._numbers[index] not in cited:
                cited.append(self._numbers[index])
        if cited:
            self._say("".join(f" [{n}]" for n in cited))
        self.flush()

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, ""
            self._say(held)

    def _say(self, text: str) -> None:
        self.answer += text
        self._emit(text)


@contextmanager
def map_api_errors() -> Iterator[None]:
    """Turn anthropic SDK errors, and transport or parse errors while a stream is read, into
    one-line `AnswerError`s, keeping the cause."""
    import httpx2  # the SDK's HTTP stack: what escapes it while a response is being read

    try:
        yield
    except anthropic.APITimeoutError as exc:
        raise AnswerError(
            "Anthropic API timed out: try again, or raise llm_timeout", transient=True
        ) from exc
    except anthropic.APIConnectionError as exc:
        host = exc.request.url.host
        raise AnswerError(
            f"cannot reach the Anthropic API at {host}: check the network and ANTHROPIC_BASE_URL",
            transient=True,
        ) from exc
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
        raise AnswerError(
            f"Anthropic API rejected the key ({exc.status_code}): check ANTHROPIC_API_KEY",
            transient=False,
        ) from exc
    except anthropic.APIStatusError as exc:
        raise _status_error(exc) from exc
    except anthropic.AnthropicError as exc:
        raise AnswerError(f"Anthropic API call failed: {one_line(exc, MESSAGE_LIMIT)}") from exc
    except httpx2.TimeoutException as exc:
        raise AnswerError(
            "the Anthropic API stopped answering mid-stream (timed out): try again, or raise "
            "llm_timeout",
            transient=True,
        ) from exc
    except httpx2.TransportError as exc:
        raise AnswerError(
            f"the connection to the Anthropic API broke mid-answer ({type(exc).__name__}): "
            "try again",
            transient=True,
        ) from exc
    except (json.JSONDecodeError, AssertionError) as exc:  # AssertionError: an empty stream
        raise AnswerError(
            "the Anthropic API sent a malformed stream: try again", transient=True
        ) from exc


def _status_error(exc: anthropic.APIStatusError) -> AnswerError:
    status = exc.status_code
    # An error event inside a 200 stream carries its kind only in the body.
    kind = exc.type or ""
    label = f"{status} {kind}".strip() if status >= 400 else kind or "stream error"
    if status == 429 or kind == "rate_limit_error":
        return AnswerError(f"Anthropic API rate limit ({label}): try again shortly", transient=True)
    if status == 529 or kind == "overloaded_error":
        return AnswerError(f"Anthropic API overloaded ({label}): try again shortly", transient=True)
    if status >= 500 or status in _TRANSIENT_STATUSES or kind in _TRANSIENT_TYPES:
        return AnswerError(f"Anthropic API error ({label}): try again shortly", transient=True)
    detail = one_line(exc.api_message or exc.message, MESSAGE_LIMIT)
    return AnswerError(f"Anthropic API refused the request ({label}): {detail}", transient=False)


def _user_message(question: str, hits: Sequence[Hit]) -> MessageParam:
    content: list[SearchResultBlockParam | TextBlockParam] = [search_result(hit) for hit in hits]
    content.append({"type": "text", "text": question})
    return {"role": "user", "content": content}


def search_result(hit: Hit) -> SearchResultBlockParam:
    """A hit as a citable `search_result` block."""
    return {
        "type": "search_result",
        "source": hit.label,
        "title": hit.heading or hit.path,
        "content": [{"type": "text", "text": hit.text}],
        "citations": {"enabled": True},
    }


def _citation(n: int, hit: Hit, quote: str) -> Citation:
    start, end = quoted_lines(hit, quote)
    return Citation(
        n=n,
        path=hit.path,
        heading=hit.heading,
        start_line=start,
        end_line=end,
        quote=quote,
        stale=hit.stale,
    )


def quoted_lines(hit: Hit, quote: str) -> tuple[int, int]:
    """The lines of `hit` that `quote` (what Claude cited) spans; the whole hit when the
    quote cannot be found in it."""
    wanted = quote.strip()
    at = hit.text.find(wanted) if wanted else -1
    if at < 0:
        return hit.start_line, hit.end_line
    start = hit.start_line + hit.text.count("\n", 0, at)
    return start, min(hit.end_line, start + wanted.count("\n"))
