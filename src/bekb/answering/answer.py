"""Composing an answer from retrieved passages: abstain, Claude with citations, or quotes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bekb.answering.expansion import Expansion
from bekb.answering.extractive import PASSAGES, abstention, extractive_answer
from bekb.domain import Answer, AnswerMode, Citation, Hit, Persona, Turn, Usage
from bekb.errors import AnswerError, ConfigError
from bekb.settings import Settings

if TYPE_CHECKING:
    from bekb.answering.llm import ClaudeAnswer

TextCallback = Callable[[str], None]
SearchCallback = Callable[[str], Sequence[Hit]]
UNCITED = "Claude's answer cites none of the passages it was given: check it against them."


def compose(
    question: str,
    hits: Sequence[Hit],
    persona: Persona,
    *,
    off_topic: bool,
    uncovered: Sequence[str] = (),
    use_llm: bool | None,
    settings: Settings,
    on_text: TextCallback | None = None,
    expansion: Expansion | None = None,
    search: SearchCallback | None = None,
    on_search: Callable[[str], None] | None = None,
    history: Sequence[Turn] = (),
) -> Answer:
    """The answer to `question` from `hits`, in the voice of `persona`.

    `off_topic` (the corpus does not cover the question) gives an abstention; `uncovered`
    are the question's names the corpus never mentions (said, and kept in the answer).
    Claude writes the answer when `use_llm` is True (required: an API failure raises) or
    None and a key is configured (a transient API failure then falls back to quoting
    passages); otherwise the best passages are quoted. With `search`, Claude may search
    again (`max_searches`); `expansion` (the question's rewrites) is recorded in the answer
    with its notice and usage; `history` are a conversation's earlier turns.
    """
    hits, missing = tuple(hits), tuple(uncovered)
    rewrites = expansion or Expansion()
    notices = [rewrites.notice] if rewrites.notice else []

    def answer(
        mode: AnswerMode,
        text: str,
        citations: tuple[Citation, ...],
        searches: tuple[str, ...] = (),
        usage: Usage | None = rewrites.usage,
    ) -> Answer:
        notice = "; ".join(notices)
        return Answer(question, mode, text, citations, hits, persona.name, notice, missing,
                      rewrites=rewrites.queries, searches=searches, usage=usage)  # fmt: skip

    if off_topic:
        return answer("abstain", abstention(question, hits, missing), ())
    if use_llm or (use_llm is None and settings.llm_enabled):
        try:
            claude = _claude(question, hits, persona, settings, on_text, search, on_search, history)
        except AnswerError as exc:
            if use_llm or not exc.transient:
                raise
            notices.append(f"{exc} — showing the best passages instead.")
        else:
            if not claude.citations and hits:
                notices.append(UNCITED)
            usage = claude.usage if rewrites.usage is None else rewrites.usage + claude.usage
            return answer(
                "llm", claude.text, claude.citations, searches=claude.searches, usage=usage
            )
    quoted = quotable(hits, PASSAGES)
    text, citations = extractive_answer(quoted, persona=persona.name, uncovered=missing)
    return answer("extractive", text, citations)


def quotable(hits: Sequence[Hit], count: int) -> list[Hit]:
    """The best `count` passages, none inside another."""
    out: list[Hit] = []
    for passage in hits:
        if not any(
            q.path == passage.path
            and q.start_line <= passage.start_line
            and passage.end_line <= q.end_line
            for q in out
        ):
            out.append(passage)
        if len(out) == count:
            break
    return out


def _claude(
    question: str,
    hits: Sequence[Hit],
    persona: Persona,
    settings: Settings,
    on_text: TextCallback | None,
    search: SearchCallback | None,
    on_search: Callable[[str], None] | None,
    history: Sequence[Turn],
) -> ClaudeAnswer:
    from bekb.answering.llm import converse, make_client
    from bekb.answering.persona import system_prompt

    key = settings.anthropic_api_key
    if not settings.llm_enabled or key is None:
        raise ConfigError("answering with Claude needs an API key: set ANTHROPIC_API_KEY")
    client = make_client(
        api_key=key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        timeout=settings.llm_timeout,
    )
    return converse(
        client,
        model=settings.llm_model,
        max_tokens=settings.llm_max_tokens,
        system=system_prompt(persona),
        question=question,
        hits=hits,
        on_text=on_text,
        search=search,
        max_searches=settings.max_searches,
        on_search=on_search,
        history=history,
    )
