"""Hostile documents: generated Markdown and code run through chunking never crash, never lose
text, and every chunk fits the model window; the worst real-world shapes are tried by name.

The generators of tests/chunking/test_chunk_file.py are reused and made hostile here (BOM,
CR-only and mixed line ends, tabs, NUL bytes, U+FFFD, very long lines, deep nesting,
unbalanced fences). Lone surrogates are not generated: files are decoded strictly, so a
chunker never sees one (an undecodable file is skipped with a reason, see
test_hostile_paths.py).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from hardening_support import EXAMPLES_ENV, setting, tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chunking"))

from test_chunk_file import (  # the generators and checks of the chunking tests
    SHA,
    _covers,
    _misplaced,
    _over_window,
    code_files,
    markdown_files,
)

from bekb.chunking import chunk_file
from bekb.chunking.markdown import MAX_TITLE_CHARS
from bekb.embedding.model import resolve_model
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.settings import DEFAULT_EMBED_MODEL

pytestmark = pytest.mark.hardening

EXAMPLES = setting(EXAMPLES_ENV, 100)
HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CASES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def counter() -> ModelTokenizer:
    return ModelTokenizer.for_model(resolve_model(DEFAULT_EMBED_MODEL))


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    tally("hostile documents (generated)", sum(CASES.values()))


# -- making documents hostile -------------------------------------------------------------------

_JUNK = st.sampled_from(
    [
        "\x00",
        "\ufffd",
        "\t",
        "\x0b",
        "\x0c",
        "\u2028",
        "\u200b",
        "\ufeff",
        "```",
        "~~~",
        "# ",
        "---",
        "\\",
        "\r",
        "🙂",
        "ğ",
        "ß",
        "中文",
        "\u202e",
    ]
)
_LONG = st.one_of(
    st.integers(2_000, 20_000).map(lambda n: "y" * n),
    st.integers(500, 4_000).map(lambda n: "tok " * n),
    st.integers(200, 2_000).map(lambda n: "日本語" * n),
)


def _nested_list(depth: int) -> str:
    return "".join(f"{'  ' * i}- level {i}\n" for i in range(depth))


def _nested_quote(depth: int) -> str:
    return "".join(f"{'> ' * i}quoted {i}\n" for i in range(depth))


@st.composite
def hostile(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A document from `base`, then damaged the way real trees damage them."""
    text = draw(base)
    lines = text.split("\n")
    ends = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1, max_size=4))
    if draw(st.booleans()):  # mixed (or CR-only) line ends
        text = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    for _ in range(draw(st.integers(0, 6))):  # stray bytes anywhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(_JUNK) + text[at:]
    if draw(st.integers(0, 4)) == 0:  # a very long line
        at = draw(st.integers(0, len(text)))
        text = text[:at] + "\n" + draw(_LONG) + "\n" + text[at:]
    if draw(st.integers(0, 4)) == 0:  # deep nesting
        depth = draw(st.integers(50, 400))
        text += draw(st.sampled_from([_nested_list, _nested_quote]))(depth)
    if draw(st.integers(0, 4)) == 0:  # an unbalanced fence
        at = draw(st.integers(0, len(text)))
        text = text[:at] + "\n```python\n" + text[at:]
    if draw(st.booleans()):
        text = text.replace("    ", "\t")
    if draw(st.integers(0, 3)) == 0:
        text = "\ufeff" + text
    return text


_ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
_DOCUMENTS = st.one_of(
    hostile(markdown_files()).map(lambda t: ("docs/hostile.md", t)),
    hostile(code_files().map(lambda f: f[1])).flatmap(
        lambda t: st.sampled_from(["a.py", "a.js", "a.ts", "a.rs", "a.go", "a.json", "a.txt"]).map(
            lambda p: (p, t)
        )
    ),
    hostile(_ANY_TEXT).map(lambda t: ("notes/any.md", t)),
)


def _check(counter: ModelTokenizer, path: str, text: str, window: int) -> None:
    chunks = chunk_file(path, text, SHA, counter, max_tokens=window)
    assert _covers(text, chunks), "text lost"
    assert _over_window(counter, chunks, window or counter.max_tokens) == []
    assert _misplaced(text, chunks) == []
    assert all(len(c.heading) <= 6 * (MAX_TITLE_CHARS + 3) for c in chunks)  # 6 levels


@HOSTILE
@given(document=_DOCUMENTS)
def test_hostile_documents_chunk_losslessly_within_the_model_window(counter, document):
    CASES["model window"] += 1
    _check(counter, *document, window=0)


@HOSTILE
@given(document=_DOCUMENTS)
def test_hostile_documents_chunk_losslessly_within_a_small_window(counter, document):
    CASES["small window"] += 1
    _check(counter, *document, window=40)


# -- the worst shapes, by name --------------------------------------------------------------------

_SECTION = (
    "## Step {n}\n\nCompensate every completed step in reverse order when a later one fails; "
    "record the saga state after each step so that a restart resumes.\n\n```python\n"
    "def step_{n}(saga):\n    return saga.run({n})\n```\n\n"
)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        pytest.param("a.md", "", id="empty"),
        pytest.param("a.md", " \n\t\r\n\n", id="whitespace-only"),
        pytest.param("a.md", "x" * 100_000, id="one-100k-char-line"),
        pytest.param("a.md", "# " + "long heading " * 8_000 + "\n\nbody\n", id="100k-heading"),
        pytest.param("a.py", "x = '" + "a" * 100_000 + "'\n", id="100k-line-python"),
        pytest.param("a.md", "word " * 20_000, id="100k-chars-of-words"),
        pytest.param("a.md", "日本語" * 33_000, id="100k-cjk-line"),
        pytest.param("a.md", _nested_list(1_000), id="1000-deep-list"),
        pytest.param("a.md", _nested_quote(500), id="500-deep-blockquote"),
        pytest.param("a.py", "x = " + "(" * 5_000 + ")" * 5_000 + "\n", id="5000-deep-parens"),
        pytest.param("a.js", "x = " + "{a:" * 3_000 + "1" + "}" * 3_000 + ";\n", id="deep-js"),
        pytest.param("a.json", "[" * 10_000 + "]" * 10_000, id="deep-json"),
        pytest.param(
            "a.md", "---\nx: " + "[" * 5_000 + "]" * 5_000 + "\n---\n# T\n\nbody\n", id="deep-yaml"
        ),
        pytest.param("a.md", "# T\n\n```python\n" + "code line\n" * 3_000, id="unclosed-fence"),
        pytest.param("a.md", "```\n```\n```\n" * 500, id="fence-storm"),
        pytest.param("a.md", "\x00" * 1_000 + "# T\n\nnul\x00bytes\n", id="nul-characters"),
        pytest.param("a.md", "caf\ufffd " * 2_000, id="replacement-characters"),
        pytest.param("a.md", "\t# T\n\n\t\tpara\t\ttabbed\n" * 500, id="tabs"),
        pytest.param("a.md", (_SECTION * 50).replace("\n", "\r\n"), id="crlf"),
        pytest.param("a.md", (_SECTION * 50).replace("\n", "\r"), id="cr-only"),
        pytest.param("a.md", "line\r\nline\rline\n" * 3_000, id="mixed-line-ends"),
        pytest.param("a.md", "\u2028".join(["para"] * 5_000), id="unicode-line-separators"),
        pytest.param("a.md", "\u202e\u200b" * 10_000, id="bidi-and-zero-width"),
    ],
)
def test_worst_shapes_chunk_losslessly_within_the_window(counter, path, text):
    CASES["named shapes"] += 1
    _check(counter, path, text, window=0)


def test_a_bom_does_not_hide_frontmatter_or_the_first_heading(counter):
    text = "\ufeff---\nname: sagas\ndescription: Saga patterns.\n---\n# Sagas\n\n" + (
        "Each step has a compensating action that undoes it when a later step fails.\n"
    )

    chunks = chunk_file("a/SKILL.md", text, SHA, counter)

    assert [(c.kind, c.heading, c.context) for c in chunks] == [
        ("frontmatter", "", "sagas"),
        ("prose", "Sagas", "sagas\nSagas"),
    ]


def test_old_mac_line_ends_keep_headings_short(counter):
    # Only \n numbers lines; a CR-only file is one "line" and its heading must not be all of it.
    text = "# Sagas\r\rEach step has a compensating action.\r\r## Orchestration\r\rmore\r" * 300

    chunks = chunk_file("a.md", text, SHA, counter)

    assert {c.heading for c in chunks} == {"Sagas"}
    assert _covers(text, chunks)


def test_a_giant_heading_or_name_is_cut_in_every_chunk(counter):
    name = "n" * 10_000
    text = f"---\nname: {name}\n---\n# {'h' * 50_000}\n\n" + "body text of the section. " * 40

    chunks = chunk_file("a.md", text, SHA, counter)

    assert max(len(c.heading) for c in chunks) == MAX_TITLE_CHARS
    assert max(len(c.context) for c in chunks) <= 2 * MAX_TITLE_CHARS + 1
    assert _covers(text, chunks)
