"""Hostile questions and arguments: whatever is pasted, the library answers or raises UsageError,
and the CLI prints one line and exits 2 for usage errors (0 with documented clamping).

CLI cases run `bekb.cli.app.run()` in this process with the hashing model (fast); the few that
depend on a real process (argv bytes, stdout encoding) run the hashing CLI as a subprocess.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import REPO, TINY_AGENT, HashingEmbedder
from hardening_support import (
    EXAMPLES_ENV,
    error_line,
    in_process_cli,
    run_cli,
    setting,
    tally,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bekb import Answer, KnowledgeBase, Settings, UsageError
from bekb.inputs import MAX_K, MAX_QUESTION_CHARS

pytestmark = pytest.mark.hardening

EXAMPLES = setting(EXAMPLES_ENV, 100)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CASES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    tally("hostile questions (library, generated)", CASES["library"])
    tally("hostile questions and arguments (CLI)", CASES["cli"])


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The tiny corpus, indexed once for the whole module (read-only)."""
    import shutil

    from conftest import FIXTURES

    base = tmp_path_factory.mktemp("questions")
    shutil.copytree(FIXTURES / "corpus", base / "root")
    settings = Settings.load(
        root=base / "root", index_dir=base / "index", agent_files=(TINY_AGENT,)
    )
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    kb.index()
    return kb


# -- the library ----------------------------------------------------------------------------------

_QUESTIONS = st.one_of(
    st.text(max_size=200),  # anything, lone surrogates and control characters included
    st.text(st.characters(whitelist_categories=("Cc", "Cf", "Zs", "Zl", "Zp")), max_size=50),
    st.sampled_from(
        [
            "サガの補償トランザクションはどう実装しますか",
            "كيف أنفذ نمط الملحمة",
            "Как откатить шаг саги?",
            "🙂🚀 saga?",
            "'; DROP TABLE chunks; --",
            '{"$where": "1"}',
            "saga\x00compensation",
            "\u202ereversed saga\u202c",
            "x" * MAX_QUESTION_CHARS,
            "saga " * 800,
        ]
    ),
)


@FUZZ
@given(question=_QUESTIONS, k=st.one_of(st.none(), st.integers(-5, 10**12)))
def test_search_answers_or_refuses_any_query_and_k(indexed, question, k):
    CASES["library"] += 1
    try:
        hits = indexed.search(question, k=k)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert len(hits) <= min(k or 8, MAX_K)
    assert all(h.path and h.start_line <= h.end_line for h in hits)


@FUZZ
@given(question=_QUESTIONS)
def test_ask_answers_or_refuses_any_question(indexed, question):
    CASES["library"] += 1
    try:
        answer = indexed.ask(question, use_llm=False)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(answer, Answer) and answer.mode in ("extractive", "abstain")
    assert all(ch.isprintable() or ch in "\n\t" for ch in answer.question)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        pytest.param("", "the question is empty", id="empty"),
        pytest.param(" \t\n\u3000", "the question is empty", id="whitespace"),
        pytest.param("x" * (MAX_QUESTION_CHARS + 1), "the limit is 4000", id="4001-chars"),
    ],
)
def test_unusable_questions_raise_usage_error(indexed, question, message):
    with pytest.raises(UsageError, match=message):
        indexed.ask(question, use_llm=False)


def test_a_question_of_exactly_the_limit_is_answered(indexed):
    assert indexed.ask("saga " * (MAX_QUESTION_CHARS // 5), use_llm=False).hits


def test_an_absurd_k_is_capped_at_the_maximum(indexed):
    assert len(indexed.search("saga", k=10**12)) <= MAX_K


def test_a_query_of_control_characters_only_is_a_usage_error(indexed):
    with pytest.raises(UsageError, match="the query is empty"):
        indexed.search("\x01\x02\x1b\x7f", k=3)


# -- the CLI, in process --------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `bekb ARGS` in this process (hashing model); returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("BEKB_AGENT_FILES", TINY_AGENT)
    run = in_process_cli(monkeypatch, capsys)

    def counted(*args: object) -> tuple[int, str, str]:
        CASES["cli"] += 1
        return run(*args)

    return counted


def _on(kb: KnowledgeBase) -> list[str]:
    return ["--root", str(kb.settings.root), "--index-dir", str(kb.settings.index_dir)]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(["search", ""], "error: the query is empty", id="search-empty"),
        pytest.param(["search", " \t "], "error: the query is empty", id="search-blank"),
        pytest.param(["search", "\x01\x1b\x7f"], "error: the query is empty", id="search-ctrl"),
        pytest.param(["ask", ""], "error: the question is empty", id="ask-empty"),
        pytest.param(
            ["ask", "x" * 4001],
            "error: the question is 4001 characters; the limit is 4000",
            id="ask-4001",
        ),
        pytest.param(["search", "saga", "-k", "0"], "error: k must be at least 1 (got 0)", id="k0"),
        pytest.param(["ask", "saga", "-k", "-7"], "error: k must be at least 1 (got -7)", id="k-7"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_any_first_run_build(cli, tmp_path, args, line):
    index_dir = tmp_path / "never-built"

    code, out, err = cli("--root", REPO / "tests/fixtures/corpus", "--index-dir", index_dir, *args)

    assert (code, out, err) == (2, "", line + "\n")
    assert not index_dir.exists()  # refused before `no index yet: building it now`


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        pytest.param(["--as", "nobody"], 2, "error: no persona named 'nobody'", id="unknown-as"),
        pytest.param(["--as", "a" * 300 + ".md"], 2, "error: no persona named 'aaa", id="long-as"),
        pytest.param(["--as", "x\x01.md"], 2, "error: no persona named 'x", id="ctrl-as"),
        pytest.param(
            ["--as", "../../etc/passwd"], 1, "error: persona path ../../etc/passwd", id="escape-as"
        ),
        pytest.param(["--llm", "openai"], 2, "error: unknown --llm 'openai'", id="unknown-llm"),
    ],
)
def test_bad_persona_or_provider_is_one_line(cli, indexed, args, code, start):
    got, out, err = cli(*_on(indexed), "ask", "saga compensation", *args)

    assert (got, out) == (code, "")
    assert err.startswith(start) and err.count("\n") == 1 and len(err) < 400


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("サガの補償", id="japanese"),
        pytest.param("تعويض الملحمة", id="arabic"),
        pytest.param("🙂 saga 🚀", id="emoji"),
        pytest.param("saga\tcompensation\r\n", id="tab-crlf"),
        pytest.param("-k 5 saga", id="looks-like-an-option"),
    ],
)
def test_other_languages_and_odd_characters_search_normally(cli, indexed, query):
    code, out, err = cli(*_on(indexed), "search", "--json", "--", query)

    assert (code, err) == (0, "")
    assert json.loads(out)["query"] == query


def test_an_absurd_k_is_capped_not_refused(cli, indexed):
    code, out, _ = cli(*_on(indexed), "search", "saga", "-k", "99999999999999999999", "--json")

    assert code == 0
    assert 0 < len(json.loads(out)["hits"]) <= MAX_K


@pytest.mark.parametrize(
    ("env", "flags", "start"),
    [
        pytest.param({"BEKB_K": "0"}, [], "error: invalid setting k:", id="env-k-0"),
        pytest.param({"BEKB_K": "lots"}, [], "error: invalid setting k:", id="env-k-text"),
        pytest.param({}, ["--scope", "everything"], "error: invalid setting scope:", id="scope"),
        pytest.param({}, ["--chroma-url", "ftp://x"], "error: invalid Chroma URL", id="url"),
    ],
)
def test_bad_settings_are_one_line(cli, indexed, monkeypatch, env, flags, start):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    code, out, err = cli(*_on(indexed), *flags, "search", "saga")

    assert (code in (1, 2), out) == (True, "")
    assert err.startswith(start) and err.count("\n") == 1


def test_status_of_an_index_dir_that_does_not_exist_says_to_index(cli, tmp_path):
    missing = tmp_path / "no" / "such" / "index"

    code, out, err = cli("--root", REPO / "tests/fixtures/corpus", "--index-dir", missing, "status")

    assert (code, out, err) == (0, f"no index in {missing}: run `bekb index`\n", "")


def test_status_of_a_file_where_the_index_dir_should_be_says_so(cli, tmp_path):
    in_the_way = tmp_path / "index"
    in_the_way.write_text("not an index\n", encoding="utf-8")

    code, out, err = cli(
        "--root", REPO / "tests/fixtures/corpus", "--index-dir", in_the_way, "status"
    )

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"problem     the index dir {in_the_way} is not a folder (a file is in the way): move "
        "it, or pass another --index-dir",
        f"no index in {in_the_way}",
    ]


# -- the CLI, as a process ------------------------------------------------------------------------


def test_undecodable_argument_bytes_give_valid_json(indexed):
    argument = b"\xff\xfe saga".decode("utf-8", "surrogateescape")  # what Python makes of argv

    done = run_cli(
        *_on(indexed), "search", argument, "--json",
        env={"PYTHONIOENCODING": "utf-8", "BEKB_AGENT_FILES": TINY_AGENT},
    )  # fmt: skip

    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["query"] == "\ufffd\ufffd saga"


def test_a_real_process_refuses_an_empty_question_with_exit_2(indexed):
    done = run_cli(*_on(indexed), "ask", "   ", env={"BEKB_AGENT_FILES": TINY_AGENT})

    assert (done.returncode, error_line(done), done.stdout) == (
        2,
        "error: the question is empty",
        "",
    )


def test_help_and_readme_document_the_exit_codes_and_k_range():
    done = run_cli("search", "--help")
    readme = (REPO / "README.md").read_text()

    assert done.returncode == 0
    assert f"(1-{MAX_K}; more is capped at {MAX_K})" in " ".join(done.stdout.split())
    assert "Exit codes: `0` success, `1` runtime failure" in " ".join(readme.split())
    assert "`2` usage error" in readme
