"""Claude answers over hits passed as citable search results, streamed; maps SDK errors."""

from __future__ import annotations

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
    on_text: Callable[[str], None] | None = None,
) -> tuple[str, tuple[Citation, ...]]:
    """Ask Claude `question` over `hits`, streaming text deltas to `on_text`.

    Each hit goes in as a `search_result` block with citations enabled. The returned text is
    the streamed text with ` [n]` markers after each cited block; citations are numbered in
    order of first appearance, one per hit.

    Raises:
        AnswerError: the API call failed after the SDK's retries (`transient` says whether a
            later retry may work).
    """
    with (
        map_api_errors(),
        client.messages.stream(
            model=model,
            max_tokens=max_tokens,
            system=system,
            messages=[_user_message(question, hits)],
        ) as stream,
    ):
        for delta in stream.text_stream:
            if on_text is not None:
                on_text(delta)
        final = stream.get_final_message()
    return _cite_blocks(final.content, hits)


def _cite_blocks(blocks: Sequence[object], hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]]:
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for block in blocks:
        if not isinstance(block, TextBlock):
            continue
        cited: list[int] = []
        for location in block.citations or ():
            # Only search results are sent, so other citation kinds cannot point at a hit.
            if not isinstance(location, CitationsSearchResultLocation):
                continue
            index = location.search_result_index
            if not 0 <= index < len(hits):
                continue
            if index not in numbers:
                numbers[index] = len(numbers) + 1
                citations.append(_citation(numbers[index], hits[index], location.cited_text))
            if numbers[index] not in cited:
                cited.append(numbers[index])
        parts.append(_with_markers(block.text, cited))
    return "".join(parts), tuple(citations)


@contextmanager
def map_api_errors() -> Iterator[None]:
    """Turn anthropic SDK errors into one-line `AnswerError`s, keeping the cause."""
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
    content: list[SearchResultBlockParam | TextBlockParam] = [
        {
            "type": "search_result",
            "source": hit.label,
            "title": hit.heading or hit.path,
            "content": [{"type": "text", "text": hit.text}],
            "citations": {"enabled": True},
        }
        for hit in hits
    ]
    content.append({"type": "text", "text": question})
    return {"role": "user", "content": content}


def _citation(n: int, hit: Hit, quote: str) -> Citation:
    return Citation(
        n=n,
        path=hit.path,
        heading=hit.heading,
        start_line=hit.start_line,
        end_line=hit.end_line,
        quote=quote,
        stale=hit.stale,
    )


def _with_markers(text: str, numbers: Sequence[int]) -> str:
    if not numbers:
        return text
    body = text.rstrip()
    return body + "".join(f" [{n}]" for n in numbers) + text[len(body) :]
