"""KnowledgeBase.ask end to end: extractive, Claude (real SDK, fake server), fallback, abstain."""

from __future__ import annotations

import pytest
from anthropic_server import Cite, text_block
from cli_support import hashing_app, invoke
from conftest import TINY_AGENT

from bekb import AnswerError, KnowledgeBase, UsageError
from bekb.answering.persona import system_prompt

SAGA = "alpha/skills/sagas/SKILL.md"


@pytest.fixture
def indexed(tiny_kb):
    tiny_kb.index()
    return tiny_kb


def with_claude(kb: KnowledgeBase, server) -> KnowledgeBase:
    return KnowledgeBase.open(
        kb.settings,
        embedder=kb._embedder,
        anthropic_api_key="test-key",
        anthropic_base_url=server.url,
        llm_timeout=5,
    )


def test_without_a_key_ask_quotes_passages_and_the_cli_says_how_to_enable_claude(indexed):
    answer = indexed.ask("compensating action for a failed saga step")
    assert answer.mode == "extractive"
    assert answer.persona == "test-specialist"
    assert answer.citations[0].path.startswith("alpha/skills/sagas/")
    assert answer.citations[0].quote.strip() in answer.text
    assert answer.notice == ""  # advice for a person is the terminal's, not the library's
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    s = indexed.settings
    done = invoke(
        hashing_app(), ["--root", s.root, "--index-dir", s.index_dir, "ask", "saga", "--no-llm"],
        env={"BEKB_AGENT_FILES": TINY_AGENT},
    )  # fmt: skip
    assert done.err.splitlines()[-1] == (
        "Set ANTHROPIC_API_KEY to have Claude synthesise an answer from these passages."
    )


def test_with_a_key_claude_answers_from_the_passages_with_citations(indexed, anthropic_server):
    anthropic_server.reply(text_block("Use a saga with compensating actions.", Cite(0)), "\n")
    kb = with_claude(indexed, anthropic_server)
    streamed: list[str] = []

    answer = kb.ask("compensating action for a failed saga step", on_text=streamed.append)

    assert answer.mode == "llm"
    assert answer.text == "Use a saga with compensating actions. [1]\n"
    assert "".join(streamed) == answer.text  # the markers are streamed too
    first = answer.hits[0]
    # The fake server quotes the whole passage: the citation spans its lines of text (its
    # leading blank line and trailing blank lines aside).
    text_lines = [n for n, line in enumerate(first.text.split("\n"), first.start_line) if line]
    assert [(c.n, c.path, c.start_line, c.end_line) for c in answer.citations] == [
        (1, first.path, text_lines[0], text_lines[-1])
    ]
    request = anthropic_server.requests[0].body
    persona = indexed.persona("specialists/test-specialist.md")
    assert request["system"][0]["text"] == system_prompt(persona)
    blocks = request["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["search_result"] * len(answer.hits) + ["text"]
    assert blocks[0]["source"] == first.label
    assert blocks[0]["citations"] == {"enabled": True}
    assert blocks[-1]["text"] == "compensating action for a failed saga step"


def test_an_overloaded_api_falls_back_to_the_extractive_answer(indexed, anthropic_server):
    anthropic_server.fail(529)
    kb = with_claude(indexed, anthropic_server)
    answer = kb.ask("compensating action for a failed saga step")
    assert answer.mode == "extractive"
    assert "529" in answer.notice and "best passages instead" in answer.notice


def test_a_rejected_key_is_an_error_not_a_fallback(indexed, anthropic_server):
    anthropic_server.fail(401)
    kb = with_claude(indexed, anthropic_server)
    with pytest.raises(AnswerError, match="rejected the key"):
        kb.ask("compensating action for a failed saga step")


def test_no_llm_wins_over_a_configured_key(indexed, anthropic_server):
    kb = with_claude(indexed, anthropic_server)
    assert kb.ask("saga compensation", use_llm=False).mode == "extractive"
    assert anthropic_server.requests == []


@pytest.mark.parametrize(
    "question",
    [
        "How do I tune the carburetor of a vintage motorcycle?",
        "best sourdough starter hydration for rye bread",
    ],
)
def test_a_question_the_corpus_does_not_cover_abstains(cited_kb, question):
    answer = cited_kb.ask(question)
    assert answer.mode == "abstain"
    assert answer.citations == ()
    assert answer.text.startswith(f"The knowledge base does not cover this question: {question}")
    assert "Nearest topics it does cover:" in answer.text


def test_as_answers_in_another_agent_files_voice(indexed):
    assert indexed.ask("async endpoints", persona="fastapi-pro").persona == "fastapi-pro"


def test_an_unknown_persona_lists_the_available_ones(indexed):
    with pytest.raises(UsageError, match="fastapi-pro"):
        indexed.ask("sagas", persona="fastapi")


@pytest.mark.parametrize(
    ("question", "message"),
    [
        pytest.param("", "the question is empty", id="empty"),
        pytest.param("   \n\t", "the question is empty", id="whitespace"),
        pytest.param("x" * 4001, "the question is 4001 characters; the limit is 4000", id="long"),
    ],
)
def test_unusable_questions_are_usage_errors(indexed, question, message):
    with pytest.raises(UsageError, match=message):
        indexed.ask(question)


def test_k_below_one_is_a_usage_error(indexed):
    with pytest.raises(UsageError, match="k must be at least 1"):
        indexed.search("sagas", k=0)


def test_control_characters_in_a_question_are_ignored(indexed):
    assert indexed.search("saga\x00 compensation\x1b", k=3) == indexed.search(
        "saga compensation", k=3
    )


def test_extractive_quotes_keep_a_split_code_block_whole(tiny_settings, hashing_embedder):
    kb = KnowledgeBase.open(tiny_settings, embedder=hashing_embedder, chunk_tokens=40)
    kb.index()
    answer = kb.ask("compensate failed_step reversed undo", use_llm=False)
    quoted = [c.quote for c in answer.citations if "def compensate" in c.quote]
    assert quoted, [c.label for c in answer.citations]
    source = (tiny_settings.root / SAGA).read_text()
    block = source[
        source.index("```python") : source.index("```\n", source.index("undo(step)")) + 4
    ]
    assert block in quoted[0]


def test_persona_without_any_configured_agent_file_says_what_to_set(tiny_settings):
    kb = KnowledgeBase.open(tiny_settings.model_copy(update={"agent_files": ()}))
    with pytest.raises(UsageError, match="no agent file configured: set agent_files"):
        kb.persona()
