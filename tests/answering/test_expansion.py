"""Query expansion through the real anthropic SDK against the loopback Messages-API server:
the structured request, bad replies, the disk cache, the fusion and the model defaults."""

from __future__ import annotations

import json
import typing

import anthropic
import pytest
from anthropic_server import Reply, text_block

from bekb import KnowledgeBase, Settings, contracts
from bekb.answering.expansion import cache_path, expand_question
from bekb.domain import Hit
from bekb.retrieval.fusion import fuse_runs, run_weights

QUESTION = "what is a single front door that fans requests out to several backends?"
REWRITES = {
    "keywords": "API gateway request routing aggregation",
    "rephrasing": "How does an API gateway route and aggregate requests to backend services?",
    "passage": "An API gateway is the single entry point that routes each request.",
}


@pytest.fixture
def settings(tmp_path, anthropic_server) -> Settings:
    return Settings.load(
        root=tmp_path,
        index_dir=tmp_path / "index",
        cache_dir=tmp_path / "cache",
        anthropic_api_key="sk-ant-test",
        anthropic_base_url=anthropic_server.url,
        llm_timeout=5,
        expand=True,
    )


def test_expansion_asks_the_expand_model_for_structured_queries(settings, anthropic_server):
    anthropic_server.reply(json.dumps(REWRITES))

    expansion = expand_question(QUESTION, settings)

    assert expansion.queries == tuple(REWRITES.values())
    assert (expansion.notice, expansion.cached) == ("", False)
    assert expansion.usage is not None and expansion.usage.input_tokens == 100
    [request] = anthropic_server.requests
    body = request.body
    assert body["model"] == settings.expand_model == "claude-haiku-5-5"
    assert body["messages"] == [{"role": "user", "content": QUESTION}]
    schema = body["output_config"]["format"]
    assert schema["type"] == "json_schema"
    assert set(schema["schema"]["properties"]) == {"keywords", "rephrasing", "passage"}
    assert "stream" not in body


def test_a_repeated_question_is_answered_from_the_cache(settings, anthropic_server):
    anthropic_server.reply(json.dumps(REWRITES))
    first = expand_question(QUESTION, settings)

    again = expand_question("  " + QUESTION.replace(" ", "  ") + "\n", settings)

    assert len(anthropic_server.requests) == 1  # the second run sent no request
    assert (again.queries, again.cached, again.usage) == (first.queries, True, None)
    assert cache_path(settings.cache_folder, settings.expand_model, QUESTION).is_file()
    other = cache_path(settings.cache_folder, "claude-other", QUESTION)
    assert other != cache_path(settings.cache_folder, settings.expand_model, QUESTION)


@pytest.mark.parametrize(
    ("reply", "notice"),
    [
        ("this is not JSON", "query expansion failed"),
        (json.dumps({"keywords": "x"}), "query expansion failed"),
        (json.dumps({"keywords": " ", "rephrasing": "", "passage": QUESTION}), "no usable"),
    ],
)
def test_a_malformed_or_empty_reply_searches_the_question_alone(
    settings, anthropic_server, reply, notice
):
    anthropic_server.reply(reply)

    expansion = expand_question(QUESTION, settings)

    assert expansion.queries == ()
    assert notice in expansion.notice and "\n" not in expansion.notice
    expand_question(QUESTION, settings)
    assert len(anthropic_server.requests) == 2  # nothing was cached


def test_an_api_error_is_one_notice_line(settings, anthropic_server):
    anthropic_server.fail(400, "output_config: not supported by this model")

    expansion = expand_question(QUESTION, settings)

    assert expansion.queries == ()
    assert expansion.notice.startswith("query expansion failed (Anthropic API refused")


def test_without_a_key_nothing_is_asked(settings, anthropic_server):
    keyless = Settings.load(**{**settings.model_dump(), "anthropic_api_key": None})
    assert expand_question(QUESTION, keyless).queries == ()
    assert anthropic_server.requests == []


def _hit(path: str, *chunks: str) -> Hit:
    return Hit(path=path, heading="", start_line=1, end_line=2, text=path, score=1.0,
               chunk_ids=chunks)  # fmt: skip


def test_fusion_keeps_the_question_s_passage_and_counts_each_run_once():
    a, b, c = _hit("a.md", "a1"), _hit("b.md", "b1"), _hit("c.md", "c1")
    wider_b = _hit("b.md", "b1", "b2")  # the same passage, assembled wider by a rewrite

    fused = fuse_runs([[a, b], [wider_b, c], [c, wider_b]], [2.0, 1.0, 1.0])

    assert [h.path for h in fused] == ["b.md", "a.md", "c.md"]
    assert fused[0].chunk_ids == ("b1",)  # the question's own text and lines
    assert fused[0].score == pytest.approx(2 / 62 + 1 / 61 + 1 / 62)


def test_a_rewrite_counts_fully_only_when_the_corpus_matches_it_more_closely():
    assert run_weights(0.5, [0.7, 0.5, 0.3]) == [2.0, 1.0, 0.5, 0.5]


def test_default_models_are_current_ids_of_the_installed_sdk():
    literals = {
        value
        for arg in typing.get_args(anthropic.types.Model)
        for value in typing.get_args(arg)
        if isinstance(value, str)
    }
    s = Settings()
    assert {s.llm_model, s.expand_model} <= literals
    assert (s.llm_model, s.expand_model) == ("claude-sonnet-5-5", "claude-haiku-5-5")


def _structured(body: dict, rewrites: dict[str, str] = REWRITES) -> Reply | None:
    """Expansion requests get `rewrites`; answers take the queue."""
    if "output_config" not in body:
        return None
    return Reply(blocks=(text_block([json.dumps(rewrites)]),))


@pytest.fixture
def expanding_kb(tiny_kb, anthropic_server, tmp_path) -> KnowledgeBase:
    """The tiny corpus, indexed, with a key for the loopback server and expansion on."""
    tiny_kb.index()
    return KnowledgeBase.open(
        tiny_kb.settings,
        embedder=tiny_kb._embedder,
        anthropic_api_key="sk-ant-test",
        anthropic_base_url=anthropic_server.url,
        cache_dir=tmp_path / "cache",
        expand=True,
        llm_timeout=5,
    )


def test_ask_searches_the_rewrites_and_reports_usage(expanding_kb, anthropic_server):
    kb = expanding_kb
    anthropic_server.responder = _structured
    anthropic_server.reply("Use a saga.", usage={"cache_read_input_tokens": 80})

    answer = kb.ask("compensating action for a failed saga step")

    assert answer.mode == "llm" and answer.rewrites == tuple(REWRITES.values())
    data = contracts.answer_json(answer)
    assert data["rewrites"] == list(REWRITES.values())
    # One expansion call (100 in, 20 out) and one streamed answer (100 in, 20 out).
    assert data["usage"] == {
        "input_tokens": 200,
        "output_tokens": 40,
        "cache_read_input_tokens": 80,
        "cache_creation_input_tokens": 0,
    }
    sent = len(anthropic_server.requests)
    assert kb.ask("compensating action for a failed saga step", expand=False).rewrites == ()
    kb.ask("compensating action for a failed saga step")
    bodies = [r.body for r in anthropic_server.requests[sent:]]
    assert not any("output_config" in b for b in bodies)  # the second expansion was cached


def test_expansion_never_answers_a_question_the_corpus_does_not_cover(
    expanding_kb, anthropic_server
):
    kb = expanding_kb
    anthropic_server.responder = _structured
    question = "How do I tune Cassandra compaction with ScyllaDB?"
    plain = kb.ask(question, expand=False)

    expanded = kb.ask(question)

    assert plain.mode == expanded.mode == "abstain"


def test_a_paraphrase_is_answered_when_a_rewrite_lands_on_its_passage(
    expanding_kb, anthropic_server
):
    """Worded far from the documents, the question alone looks off-topic (its nearest
    passage loosely similar, most of its words unknown to the corpus); Claude's rewording
    lands on the saga passage, so the question is answered from it."""
    kb = expanding_kb
    saga_rewrites = {
        "keywords": "saga compensating action failed step",
        "rephrasing": "How does a saga run compensating actions when a step fails?",
        "passage": "A saga step has a compensating action that undoes it if a later one fails.",
    }
    anthropic_server.responder = lambda body: _structured(body, saga_rewrites)
    anthropic_server.reply("Each step is undone by its compensating action.")
    question = "when one booking step breaks halfway, how do the earlier ones get rolled back?"

    plain = kb.ask(question, expand=False, use_llm=False)
    expanded = kb.ask(question)

    assert plain.mode == "abstain"
    assert expanded.mode == "llm"
    assert expanded.hits[0].path == "alpha/skills/sagas/SKILL.md"
