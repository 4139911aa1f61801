"""Claude answers over hits passed as citable search results, streamed; maps SDK errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import anthropic
from anthropic.types import (
    CitationsSearchResultLocation,
    MessageParam,
    SearchResultBlockParam,
    TextBlock,
    TextBlockParam,
)

from bekb.domain import Citation, Hit
from bekb.errors import AnswerError, one_line

MESSAGE_LIMIT = 200
# Statuses the SDK itself retries: still failing after its retries means "try again later".
_TRANSIENT_STATUSES = frozenset({408, 409, 429})
_TRANSIENT_TYPES = frozenset({"rate_limit_error", "overloaded_error", "api_error", "timeout_error"})

TextCallback = Callable[[str], None]


def make_client(
    *, api_key: str, base_url: str | None, timeout: float, max_retries: int = 2
) -> anthropic.Anthropic:
    """An Anthropic client; `base_url=None` means the SDK's default (or ANTHROPIC_BASE_URL)."""
    return anthropic.Anthropic(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


def answer_with_claude(
    client: anthropic.Anthropic,
    *,
    model: str,
    max_tokens: int,
    system: str,
    question: str,
    hits: Sequence[Hit],
    on_text: TextCallback | None = None,
) -> tuple[str, tuple[Citation, ...]]:
    """Ask Claude `question` over `hits`, streaming the answer to `on_text`.

    Each hit goes in as a `search_result` block with citations enabled. The answer is the
    streamed text with ` [n]` markers after each cited block, sent to `on_text` as soon as
    the block is complete; citations are numbered in order of first appearance, one per hit,
    and span the lines of the text Claude quoted.

    Raises:
        AnswerError: the API call failed after the SDK's retries, or the stream broke off
            before its end (`transient` says whether a later retry may work).
    """
    citer = _Citer(hits, on_text)
    with (
        map_api_errors(),
        client.messages.stream(
            model=model,
            max_tokens=max_tokens,
            system=system,
            messages=[_user_message(question, hits)],
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
    citer.flush()
    return citer.answer, tuple(citer.citations)


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
