"""`bekb chat` and `KnowledgeBase.chat`: follow-ups understood in the context of the turns
before them; /sources, /show N, end of input leaves."""

from __future__ import annotations

import json

import pytest
from anthropic_server import Cite, text_block
from cli_support import hashing_app, invoke
from conftest import TINY_AGENT

from bekb import KnowledgeBase
from bekb.answering.expansion import expand_question

FIRST = "how do I compensate a failed saga step?"
FOLLOW_UP = "what are the details?"  # alone, the corpus does not cover it


@pytest.fixture
def indexed(tiny_kb: KnowledgeBase) -> KnowledgeBase:
    tiny_kb.index()
    return tiny_kb


def test_a_piped_chat_answers_each_line_and_runs_the_commands(indexed: KnowledgeBase) -> None:
    s = indexed.settings
    lines = [FIRST, "/sources", "/show 1", "/show 99", "/nope", "", FOLLOW_UP]
    done = invoke(
        hashing_app(),
        ["--root", s.root, "--index-dir", s.index_dir, "chat", "--no-llm"],
        stdin="\n".join(lines) + "\n",
        env={"BEKB_AGENT_FILES": TINY_AGENT},
    )
    assert done.code == 0
    first, follow_up = done.out.split("From test-specialist's knowledge base")[1:]
    assert "alpha/skills/sagas/SKILL.md" in first
    assert "alpha/skills/sagas/references/details.md" in follow_up
    errors = [line for line in done.err.splitlines() if line.startswith("error:")]
    assert (
        errors
        == [
            "error: /show takes a source number, 1 to 3",
            "error: unknown command /nope: /help lists them",
        ]
        or errors[1] == "error: unknown command /nope: /help lists them"
    )


def test_a_bad_question_is_one_error_line_and_the_chat_goes_on(indexed: KnowledgeBase) -> None:
    s = indexed.settings
    done = invoke(
        hashing_app(),
        ["--root", s.root, "--index-dir", s.index_dir, "chat", "--no-llm"],
        stdin="a" * 5000 + "\n" + FIRST + "\n",
        env={"BEKB_AGENT_FILES": TINY_AGENT},
    )
    assert done.code == 0
    errors = [line for line in done.err.splitlines() if line.startswith("error:")]
    assert errors == ["error: the question is 5000 characters; the limit is 4000"]
    assert "alpha/skills/sagas/SKILL.md" in done.out


def test_an_unknown_agent_ends_the_chat_at_once(indexed: KnowledgeBase) -> None:
    s = indexed.settings
    done = invoke(
        hashing_app(),
        ["--root", s.root, "--index-dir", s.index_dir, "chat", "--no-llm", "--as", "nobody"],
        stdin=FIRST + "\n" + FIRST + "\n",
        env={"BEKB_AGENT_FILES": TINY_AGENT},
    )
    assert done.code == 2 and done.out == ""
    assert done.err.count("error:") == 1 and "nobody" in done.err


def test_show_before_any_answer_says_to_ask_first(indexed: KnowledgeBase) -> None:
    s = indexed.settings
    done = invoke(
        hashing_app(),
        ["--root", s.root, "--index-dir", s.index_dir, "chat", "--no-llm"],
        stdin="/show 1\n",
        env={"BEKB_AGENT_FILES": TINY_AGENT},
    )
    assert (done.code, done.err.strip()) == (0, "error: no sources yet: ask a question first")


def test_a_follow_up_is_searched_with_the_question_before_it(indexed: KnowledgeBase) -> None:
    chat = indexed.chat(use_llm=False)
    first = chat.ask("saga compensating action")
    follow_up = chat.ask(FOLLOW_UP)

    assert first.citations[0].path.startswith("alpha/skills/sagas/")
    assert follow_up.mode == "extractive"
    assert {c.path for c in follow_up.citations} <= {
        "alpha/skills/sagas/SKILL.md",
        "alpha/skills/sagas/references/details.md",
    }
    assert [t.question for t in chat.turns] == ["saga compensating action", FOLLOW_UP]
    assert indexed.ask(FOLLOW_UP, use_llm=False).mode == "abstain"  # what context changes


def test_with_claude_the_follow_up_carries_the_conversation(
    indexed: KnowledgeBase, anthropic_server
) -> None:
    kb = KnowledgeBase.open(
        indexed.settings,
        embedder=indexed._embedder,
        anthropic_api_key="test-key",
        anthropic_base_url=anthropic_server.url,
        llm_timeout=5,
        expand=False,
    )
    anthropic_server.reply(text_block("Run the compensation.", Cite(0)), "\n")
    anthropic_server.reply(text_block("Test each compensation alone.", Cite(0)), "\n")
    chat = kb.chat()

    chat.ask(FIRST)
    chat.ask("and how do I test them?")

    messages = anthropic_server.requests[1].body["messages"]
    assert messages[0] == {"role": "user", "content": FIRST}
    assert messages[1]["role"] == "assistant" and "Run the compensation." in messages[1]["content"]
    assert messages[2]["content"][-1]["text"] == "and how do I test them?"


def test_expansion_sees_the_earlier_questions_and_keys_its_cache_by_them(
    tmp_path, anthropic_server
) -> None:
    from bekb import Settings

    settings = Settings.load(
        root=tmp_path,
        cache_dir=tmp_path / "cache",
        anthropic_api_key="sk-ant-test",
        anthropic_base_url=anthropic_server.url,
        llm_timeout=5,
        expand=True,
    )
    reply = {
        "keywords": "saga compensation tests",
        "rephrasing": "How to test saga compensations?",
        "passage": "Test each compensating action.",
    }
    anthropic_server.reply(json.dumps(reply))
    anthropic_server.reply(json.dumps(reply))

    expand_question("and how do I test them?", settings, [FIRST])
    expand_question("and how do I test them?", settings, [FIRST])  # cached
    expand_question("and how do I test them?", settings)  # another question: asked

    assert len(anthropic_server.requests) == 2
    prompt = anthropic_server.requests[0].body["messages"][0]["content"]
    assert f"- {FIRST}" in prompt and prompt.endswith("and how do I test them?")
    assert anthropic_server.requests[1].body["messages"][0]["content"] == "and how do I test them?"
