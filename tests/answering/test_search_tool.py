"""Claude's follow-up searches (the `search` tool), prompt caching, usage and conversation
history, through the real anthropic SDK against the loopback Messages-API server."""

from __future__ import annotations

import pytest
from anthropic_server import Cite, FakeAnthropic, ToolUse, text_block

from bekb import Settings
from bekb.answering.answer import compose
from bekb.answering.llm import SEARCH_LIMIT, ClaudeAnswer, converse, make_client
from bekb.answering.persona import parse_agent_file, system_prompt
from bekb.domain import Hit, Turn
from bekb.errors import AnswerError

PERSONA = parse_agent_file("---\nname: backend\n---\n\nYou are a backend engineer.\n", "b.md")


def _hit(path: str, text: str) -> Hit:
    return Hit(path=path, heading="H", start_line=1, end_line=1, text=text, score=1.0)


FIRST = _hit("first.md", "The question's own passage.")
FOUND = {
    "saga": [_hit("saga.md", "Compensate each step."), _hit("saga2.md", "Order the steps.")],
    "outbox": [_hit("outbox.md", "Write events to an outbox table.")],
}


def run(server: FakeAnthropic, *, max_searches: int = 3, **extra) -> tuple[ClaudeAnswer, list]:
    asked: list[str] = []
    client = make_client(api_key="sk-ant-test", base_url=server.url, timeout=5, max_retries=0)
    answer = converse(
        client,
        model="claude-sonnet-5-5",
        max_tokens=300,
        system=system_prompt(PERSONA),
        question="How do I undo a saga and publish its events?",
        hits=[FIRST],
        search=lambda q: FOUND.get(q, []),
        max_searches=max_searches,
        on_search=asked.append,
        **extra,
    )
    return answer, asked


def test_two_searches_then_an_answer_citing_results_of_both(anthropic_server):
    anthropic_server.reply(ToolUse("search", {"query": "saga"}, id="toolu_1"))
    anthropic_server.reply(
        "Let me also check the outbox.", ToolUse("search", {"query": "outbox"}, id="toolu_2")
    )
    # Search results count across the request: 0 the question's, 1-2 saga, 3 outbox.
    anthropic_server.reply(
        text_block("Compensate.", Cite(1)), text_block(" Use an outbox.", Cite(3))
    )

    answer, asked = run(anthropic_server)

    assert asked == ["saga", "outbox"] and answer.searches == ("saga", "outbox")
    assert [(c.n, c.path) for c in answer.citations] == [(1, "saga.md"), (2, "outbox.md")]
    assert answer.text.endswith("Compensate. [1] Use an outbox. [2]")
    second = anthropic_server.requests[1].body
    [result] = second["messages"][-1]["content"]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "toolu_1")
    assert [b["source"] for b in result["content"]] == [h.label for h in FOUND["saga"]]
    assert all(b["citations"] == {"enabled": True} for b in result["content"])
    assert second["messages"][-2]["content"][0]["type"] == "tool_use"
    # The persona and the tool definition are marked cacheable in every request.
    for request in anthropic_server.requests:
        assert request.body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert request.body["tools"][0]["name"] == "search"
        assert request.body["tools"][0]["cache_control"] == {"type": "ephemeral"}


def test_the_search_cap_makes_claude_answer(anthropic_server):
    anthropic_server.reply(ToolUse("search", {"query": "saga"}, id="toolu_1"))
    anthropic_server.reply(ToolUse("search", {"query": "outbox"}, id="toolu_2"))
    anthropic_server.reply("Compensate.")

    answer, asked = run(anthropic_server, max_searches=1)

    assert asked == ["saga"] and answer.text == "Compensate."
    bodies = [r.body for r in anthropic_server.requests]
    assert [b["tool_choice"] for b in bodies] == [{"type": "auto"}] + [{"type": "none"}] * 2
    refused = bodies[2]["messages"][-1]["content"][0]
    assert (refused["is_error"], refused["content"]) == (True, SEARCH_LIMIT)


def test_without_searches_no_tool_is_offered(anthropic_server):
    anthropic_server.reply("Compensate.")
    run(anthropic_server, max_searches=0)
    assert "tools" not in anthropic_server.requests[0].body


def test_usage_adds_up_over_the_rounds(anthropic_server):
    usage = {"input_tokens": 50, "output_tokens": 7, "cache_read_input_tokens": 40,
             "cache_creation_input_tokens": 10}  # fmt: skip
    anthropic_server.reply(ToolUse("search", {"query": "saga"}), usage=usage)
    anthropic_server.reply("Done.", usage=usage)

    answer, _ = run(anthropic_server)

    u = answer.usage
    assert (u.input_tokens, u.output_tokens) == (100, 14)
    assert (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (80, 20)


def test_history_goes_before_the_question(anthropic_server):
    anthropic_server.reply("Test each compensation alone.")

    run(anthropic_server, history=[Turn("how do I do sagas", "Use compensations [1].")])

    messages = anthropic_server.requests[0].body["messages"]
    assert messages[:2] == [
        {"role": "user", "content": "how do I do sagas"},
        {"role": "assistant", "content": "Use compensations [1]."},
    ]
    assert messages[2]["content"][-1]["text"] == "How do I undo a saga and publish its events?"


def test_an_api_error_mid_loop_is_one_line_and_ask_falls_back_to_quotes(anthropic_server):
    anthropic_server.reply(ToolUse("search", {"query": "saga"}))
    anthropic_server.fail(529)

    with pytest.raises(AnswerError) as raised:
        run(anthropic_server)
    assert raised.value.transient and "\n" not in str(raised.value)
    assert "overloaded" in str(raised.value)

    anthropic_server._replies.clear()
    anthropic_server.reply(ToolUse("search", {"query": "saga"}))
    anthropic_server.fail(529)
    settings = Settings.load(
        anthropic_api_key="sk-ant-test", anthropic_base_url=anthropic_server.url, llm_timeout=5
    )
    answer = compose(
        "How do I undo a saga?",
        [FIRST],
        PERSONA,
        off_topic=False,
        use_llm=None,
        settings=settings,
        search=lambda q: FOUND.get(q, []),
    )
    assert answer.mode == "extractive"
    assert answer.notice.endswith("— showing the best passages instead.")
    assert answer.citations[0].path == "first.md"
