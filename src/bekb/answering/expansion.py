"""Query expansion: a fast Claude model rewrites a question into search queries, cached on
disk by (model, prompt version, question) so a repeated question makes no API call."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydantic

from bekb.domain import Usage
from bekb.errors import AnswerError
from bekb.files import atomic_write
from bekb.settings import Settings

# Bump when the prompt or the reply's shape changes: cached rewrites of an older prompt are
# then never reused.
PROMPT_VERSION = 1
MAX_TOKENS = 400
# A rewrite longer than this is cut (a runaway reply must not become a giant query).
MAX_QUERY_CHARS = 600

SYSTEM = """\
You turn a question for a knowledge base of backend-engineering skill documents (APIs, \
distributed systems, databases, messaging, testing, tooling for AI agents) into search \
queries. You do not see the documents. Reply with:
- keywords: the question's subject in the field's standard terms (the names the literature \
uses for the patterns, techniques and tools it describes), space-separated;
- rephrasing: the question asked again in those standard terms;
- passage: two or three sentences a document answering it would contain.
Do not answer beyond what such a document would say, and keep any product or API the \
question names."""


class Rewrites(pydantic.BaseModel):
    """The structured reply: three ways to search for the question."""

    keywords: str
    rephrasing: str
    passage: str


@dataclass(frozen=True)
class Expansion:
    """Search queries for a question besides itself, and how they were obtained."""

    queries: tuple[str, ...] = ()
    cached: bool = False
    notice: str = ""  # one line when expansion failed and the question is searched alone
    usage: Usage | None = None  # None: no API call was made


def expand_question(question: str, settings: Settings, earlier: Sequence[str] = ()) -> Expansion:
    """Claude's rewrites of `question` as search queries (none without an API key);
    `earlier` are the conversation's earlier questions, oldest first, which a follow-up
    may refer to ("and how do I test them?"): the rewrites then stand on their own.

    A failed call or an unusable reply gives no queries and a one-line notice; only good
    replies are cached.
    """
    key = settings.anthropic_api_key
    if key is None or not settings.llm_enabled:
        return Expansion()
    model = settings.expand_model
    path = cache_path(settings.cache_folder, model, question, earlier)
    cached = _read(path)
    if cached is not None:
        return Expansion(_queries(question, cached), cached=True)
    from bekb.answering.llm import make_client, structured_reply

    client = make_client(
        api_key=key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        timeout=settings.llm_timeout,
    )
    try:
        reply, usage = structured_reply(
            client,
            model=model,
            max_tokens=MAX_TOKENS,
            system=SYSTEM,
            prompt=_prompt(question, earlier),
            output_format=Rewrites,
        )
    except AnswerError as exc:
        return Expansion(notice=f"query expansion failed ({exc}): searched the question alone")
    queries = _queries(question, reply) if reply is not None else ()
    if reply is None or not queries:
        return Expansion(
            notice="query expansion gave no usable queries: searched the question alone",
            usage=usage,
        )
    # A read-only or full cache folder costs the next run one more call, nothing else.
    with contextlib.suppress(OSError):
        atomic_write(path, reply.model_dump_json())
    return Expansion(queries, usage=usage)


def cache_path(cache_folder: Path, model: str, question: str, earlier: Sequence[str] = ()) -> Path:
    """Where the rewrites of `question` (after the `earlier` questions) by `model` under
    this prompt version are kept."""
    parts: list[object] = [model, PROMPT_VERSION, _folded(question)]
    if earlier:  # a question on its own keeps the key it always had
        parts.append([_folded(q) for q in earlier])
    key = json.dumps(parts)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return cache_folder / "expansions" / digest[:2] / f"{digest}.json"


def _prompt(question: str, earlier: Sequence[str]) -> str:
    if not earlier:
        return question
    before = "\n".join(f"- {q}" for q in earlier)
    return (
        f"Earlier questions in this conversation, oldest first:\n{before}\n\n"
        f"The question to rewrite (it may refer to them):\n{question}"
    )


def _folded(text: str) -> str:
    return " ".join(text.split())


def _read(path: Path) -> Rewrites | None:
    try:
        return Rewrites.model_validate_json(path.read_bytes())
    except (OSError, ValueError):  # absent, unreadable or damaged: ask again
        return None


def _queries(question: str, rewrites: Rewrites) -> tuple[str, ...]:
    """The rewrites as distinct queries, each different from the question."""
    seen = {" ".join(question.lower().split())}
    out: list[str] = []
    for text in (rewrites.keywords, rewrites.rephrasing, rewrites.passage):
        query = " ".join(text.split())[:MAX_QUERY_CHARS]
        if query and query.lower() not in seen:
            seen.add(query.lower())
            out.append(query)
    return tuple(out)
