"""What a person reads: search hits as path:start-end with the lines that matched, links and
bold on a terminal (FORCE_COLOR stands in for one), plain in a pipe; Claude's answer with its
[n] markers as it streams, then the sources."""

from __future__ import annotations

import re

import pytest
from anthropic_server import Cite, text_block
from cli_support import hashing_app, invoke
from conftest import TINY_AGENT

from bekb.answering.answer import UNCITED
from bekb.cli.query import ENABLE_HINT

CACHING = "alpha/skills/caching/SKILL.md"
QUERY = "stampede protection lock coalescing"
ESCAPE = "\x1b"
LINK = re.compile(r"\x1b\]8;[^;]*;(?P<uri>[^\x1b]*)\x1b\\(?P<text>[^\x1b]*)\x1b\]8;;\x1b\\")


@pytest.fixture
def bekb(tiny_settings):
    app = hashing_app()
    base = ["--root", tiny_settings.root, "--index-dir", tiny_settings.index_dir]

    def run(*args: object, **env: str):
        return invoke(app, [*base, *args], env={"BEKB_AGENT_FILES": TINY_AGENT, **env})

    return run


def test_a_piped_hit_is_its_place_its_heading_and_its_matched_lines(bekb, tiny_root):
    out = bekb("search", QUERY, "-k", "2").out
    assert ESCAPE not in out
    first, *rest = out.splitlines()
    assert re.fullmatch(rf" 1\. {CACHING}:\d+-\d+  Caching", first)
    snippet = rest[: next(i for i, line in enumerate(rest) if line.startswith(" 2. "))]
    file = (tiny_root / CACHING).read_text().splitlines()
    assert snippet
    for line in snippet:
        number, text = re.fullmatch(r"    +(\d+)  (.*)", line).groups()
        assert file[int(number) - 1].rstrip() == text  # the file's own line, numbered
    assert any("coalescing" in line for line in snippet)
    assert "score" not in out


def test_explain_shows_the_score_and_help_says_what_it_is(bekb):
    out = bekb("search", QUERY, "-k", "1", "--explain").out
    assert re.search(r"^    score \d\.\d{4}: dense #\d+ \(cos -?\d\.\d{3}\), bm25 #\d+$", out, re.M)
    help_text = " ".join(bekb("search", "--help").out.split())
    assert "fused relevance: higher is better, comparable within one search only" in help_text


def test_full_path_prints_absolute_places(bekb, tiny_root):
    out = bekb("search", QUERY, "-k", "1", "--full-path").out
    assert out.startswith(f" 1. {(tiny_root / CACHING).absolute()}:")


def test_on_a_terminal_places_are_links_and_matched_words_bold(bekb, tiny_root):
    out = bekb("search", QUERY, "-k", "1", FORCE_COLOR="1").out
    link = LINK.search(out)
    assert link is not None
    assert link["uri"] == (tiny_root / CACHING).absolute().as_uri()
    assert link["text"].startswith(f"{CACHING}:")
    assert re.search(r"\x1b\[1m(?i:coalescing)\x1b\[0m", out)


def test_no_color_keeps_links_and_drops_the_bold(bekb):
    out = bekb("search", QUERY, "-k", "1", FORCE_COLOR="1", NO_COLOR="1").out
    assert LINK.search(out)
    assert "\x1b[1m" not in out


def test_a_stale_hit_is_marked_as_ask_marks_it(bekb, tiny_root):
    bekb("index")
    path = tiny_root / CACHING
    path.write_text(path.read_text() + "\nA line added after indexing.\n")
    done = bekb("search", QUERY, "-k", "1")
    assert done.out.splitlines()[0].endswith("  (changed since indexing)")
    assert "changed since the last index" in done.err


def test_document_text_cannot_reach_the_terminal_as_escapes(bekb, tiny_root):
    path = tiny_root / CACHING
    path.write_text(path.read_text() + "\nStampede \x1b]0;owned\x07 coalescing \x1b[2J here.\n")
    out = bekb("search", QUERY, "-k", "3", FORCE_COLOR="1").out
    assert "\x1b]0;" not in out and "\x1b[2J" not in out
    assert LINK.search(out)  # rich's own sequences only


# Claude's answer on the terminal, against the local Messages API server.
KEY = {"ANTHROPIC_API_KEY": "sk-ant-terminal-0123456789"}


def claude(server) -> dict[str, str]:
    return {**KEY, "ANTHROPIC_BASE_URL": server.url}


def test_markers_appear_in_the_streamed_text_then_the_sources(bekb, anthropic_server):
    anthropic_server.reply(
        text_block("Give each step a compensating action.", Cite(0, cited_text="compensating")),
        text_block(" Run them in reverse.", Cite(1)),
        "\n",
    )
    bekb("index")
    done = bekb("ask", "compensating action for a failed saga step", **claude(anthropic_server))
    assert done.code == 0, done.err
    text, sources = done.out.split("Sources:\n")
    assert text.strip() == "Give each step a compensating action. [1] Run them in reverse. [2]"
    cited = sources.splitlines()
    assert len(cited) == 2
    for n, line in enumerate(cited, start=1):
        assert re.fullmatch(rf"  \[{n}\] \S+\.md:\d+(-\d+)?(  .+)?", line), line
    assert ENABLE_HINT not in done.err


def test_an_answer_citing_nothing_warns_and_shows_the_passages(bekb, anthropic_server):
    anthropic_server.reply("Compensate, in reverse.\n")
    bekb("index")
    done = bekb("ask", "compensating action for a failed saga step", **claude(anthropic_server))
    assert done.code == 0
    assert done.out.startswith("Compensate, in reverse.\n")
    assert "Passages it was given:\n 1. " in done.out
    assert done.err == f"warning: {UNCITED}\n"


def test_the_setup_hint_is_shown_only_without_a_key(bekb, anthropic_server):
    bekb("index")
    with_key = bekb("ask", "saga", "--no-llm", **claude(anthropic_server))
    assert with_key.code == 0 and ENABLE_HINT not in with_key.err
    keyless = bekb("ask", "saga", "--no-llm", ANTHROPIC_API_KEY="")
    assert keyless.err.splitlines()[-1] == ENABLE_HINT


def test_requiring_claude_turns_an_overload_into_exit_1(bekb, anthropic_server):
    anthropic_server.fail(529)
    bekb("index")
    done = bekb("ask", "saga", "--llm", "anthropic", **claude(anthropic_server))
    assert (done.code, done.out) == (1, "")
    assert done.err.startswith("error: Anthropic API overloaded (529")


def test_the_quoted_answer_prints_places_and_headings(bekb):
    out = bekb("ask", "how do I compensate a saga", "--no-llm").out
    heads = [line for line in out.splitlines() if re.match(r"\[\d\] ", line)]
    assert heads and all(re.fullmatch(r"\[\d\] \S+:\d+-\d+(  .+)?", h) for h in heads)
