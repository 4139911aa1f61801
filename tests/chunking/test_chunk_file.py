"""chunk_file: lossless coverage, the model window, stable ids, and the real cited corpus."""

from __future__ import annotations

import hashlib
import re
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import FIXTURES, SPECIALIST
from hypothesis import given, settings
from hypothesis import strategies as st

from bekb.chunking import MIN_WINDOW_TOKENS, chunk_file
from bekb.chunking.blocks import SPECIAL_TOKENS, split_lines
from bekb.corpus.selection import select_files
from bekb.domain import Chunk
from bekb.embedding.model import resolve_model
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.errors import ConfigError
from bekb.settings import DEFAULT_EMBED_MODEL

SAGAS = "alpha/skills/sagas/SKILL.md"
SHA = "f" * 64
PROPERTY = settings(max_examples=150, deadline=None)
STRESS = settings(max_examples=100, deadline=None)


@pytest.fixture(scope="module")
def counter() -> ModelTokenizer:
    return ModelTokenizer.for_model(resolve_model(DEFAULT_EMBED_MODEL))


def _chunks(
    counter: ModelTokenizer, text: str, *, path: str = "doc.md", max_tokens: int = 0
) -> list[Chunk]:
    return chunk_file(path, text, SHA, counter, max_tokens=max_tokens)


def _sagas() -> str:
    return (FIXTURES / "corpus" / SAGAS).read_text(encoding="utf-8")


def _covers(text: str, chunks: list[Chunk]) -> bool:
    """`text` is the chunks' texts, in order, with only whitespace before, between, after."""
    pattern = r"\s*" + r"\s*".join(re.escape(c.text) for c in chunks) + r"\s*"
    return re.fullmatch(pattern, text) is not None


def _has_blank_line(text: str) -> bool:
    return any(not line.strip() for line in split_lines(text))


def _over_window(counter: ModelTokenizer, chunks: list[Chunk], window: int) -> list[int]:
    """Real token counts (special tokens included) of the chunks that exceed `window`."""
    counts = counter.count([c.embed_text for c in chunks]) if chunks else []
    return [n + SPECIAL_TOKENS for n in counts if n + SPECIAL_TOKENS > window]


def _misplaced(text: str, chunks: list[Chunk]) -> list[Chunk]:
    """Chunks whose text is not inside lines start_line..end_line of the file."""
    lines = split_lines(text)
    return [
        c
        for c in chunks
        if not (1 <= c.start_line <= c.end_line <= len(lines))
        or c.text not in "".join(lines[c.start_line - 1 : c.end_line])
    ]


# Generated files: Markdown and code-like text

_WORDS = st.sampled_from(
    (
        *("saga", "orchestration", "compensate", "API", "naïve", "Straße", "日本語", "emoji🙂"),
        *("C#", "x", "\t", "—", "{", "}", "`code`", "**bold**", "[link](a.md)", "  "),
    )
)
_FREE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=40)
_LONG_LINE = st.one_of(
    st.integers(60, 400).map(lambda n: " ".join(["word"] * n)),
    st.integers(100, 2000).map(lambda n: "x" * n),
    st.integers(50, 300).map(lambda n: "日本語" * n),
    st.integers(20, 120).map(lambda n: "unaffable antidisestablishmentarianism " * n),
)


def _words(min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[str]:
    return st.lists(_WORDS, min_size=min_size, max_size=max_size).map(" ".join)


_HEADING = st.builds(
    lambda level, title, closing: "#" * level + (f" {title}" if title else "") + closing,
    st.integers(1, 7),
    _words(0, 6),
    st.sampled_from(["", " ##", "#"]),
)
_PARAGRAPH = st.lists(st.one_of(_words(), _FREE, _LONG_LINE), min_size=1, max_size=6).map("\n".join)
_LIST = st.lists(
    st.tuples(st.sampled_from(["- ", "* ", "1. ", "  - ", "\t- "]), _words()),
    min_size=1,
    max_size=6,
).map(lambda items: "\n".join(marker + item for marker, item in items))
_FENCE_BODY = st.lists(
    st.one_of(_words(), _FREE, st.just(""), st.just("# not a heading"), _LONG_LINE),
    max_size=12,
).map("\n".join)
_FENCED = st.builds(
    lambda fence, body, closed: (
        f"{fence}\n{body}\n" + (fence.rstrip(" jspython") if closed else "")
    ),
    st.sampled_from(["```", "~~~", "````", "```python", "~~~ js"]),
    _FENCE_BODY,
    st.booleans(),
)
_FRONTMATTER = st.builds(
    lambda name, description, extra: f"---\nname: {name}\ndescription: {description}\n{extra}---",
    _words(),
    _words(0, 30),
    st.sampled_from(["", "tags: [a, b]\n", "bad: [unclosed\n", "date: 2001-13-45\n"]),
)
_BLOCK = st.one_of(_HEADING, _PARAGRAPH, _LIST, _FENCED, st.sampled_from(["", "   ", "\t", "---"]))


@st.composite
def markdown_files(draw: st.DrawFn) -> str:
    """Markdown with frontmatter, headings, paragraphs, lists, fences, odd line ends."""
    blocks = draw(st.lists(_BLOCK, max_size=25))
    if draw(st.booleans()):
        blocks.insert(0, draw(_FRONTMATTER))
    text = draw(st.sampled_from(["\n", "\n\n"])).join(blocks)
    text += draw(st.sampled_from(["", "\n", "\n\n  \n"]))
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return text


_CODE_LINE = st.one_of(
    st.builds(
        lambda keyword, name: f"{keyword}{name.replace(' ', '_')}(x) {{",
        st.sampled_from(["def ", "class ", "function ", "fn ", "func ", "export function "]),
        _words(1, 2),
    ),
    st.sampled_from(["}", "    return x", "  if (x) {", "# comment", "// comment", "/* block"]),
    st.sampled_from(["*/", "@decorator", "import os", "package main", '"""', "`", ""]),
    _words().map(lambda w: "    " + w),
    _FREE,
    _LONG_LINE,
)


@st.composite
def code_files(draw: st.DrawFn) -> tuple[str, str]:
    """A path with a code (or data, or plain text) suffix and code-like text for it."""
    suffix = draw(st.sampled_from([".py", ".js", ".ts", ".rs", ".go", ".json", ".txt", ".sh"]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    lines = draw(st.lists(_CODE_LINE, max_size=40))
    return f"src/file{suffix}", end.join(lines) + draw(st.sampled_from(["", end]))


@PROPERTY
@given(text=markdown_files())
def test_markdown_chunks_concatenate_back_to_the_file(counter: ModelTokenizer, text: str) -> None:
    chunks = _chunks(counter, text)

    assert _covers(text, chunks)
    if not _has_blank_line(text):
        assert "".join(c.text for c in chunks) == text


@PROPERTY
@given(text=markdown_files())
def test_markdown_chunks_fit_the_model_window(counter: ModelTokenizer, text: str) -> None:
    assert _over_window(counter, _chunks(counter, text), counter.max_tokens) == []


@PROPERTY
@given(file=code_files())
def test_code_chunks_concatenate_back_to_the_file(
    counter: ModelTokenizer, file: tuple[str, str]
) -> None:
    path, text = file
    chunks = _chunks(counter, text, path=path)

    assert _covers(text, chunks)
    if not _has_blank_line(text):
        assert "".join(c.text for c in chunks) == text


@PROPERTY
@given(file=code_files())
def test_code_chunks_fit_the_model_window(counter: ModelTokenizer, file: tuple[str, str]) -> None:
    path, text = file

    assert _over_window(counter, _chunks(counter, text, path=path), counter.max_tokens) == []


@PROPERTY
@given(file=st.one_of(markdown_files().map(lambda text: ("doc.md", text)), code_files()))
def test_chunks_sit_inside_their_line_spans_in_order(
    counter: ModelTokenizer, file: tuple[str, str]
) -> None:
    path, text = file
    chunks = _chunks(counter, text, path=path)
    overlapping = [
        (a.end_line, b.start_line) for a, b in pairwise(chunks) if a.end_line > b.start_line
    ]

    assert (_misplaced(text, chunks), overlapping) == ([], [])


@STRESS
@given(file=st.one_of(markdown_files().map(lambda text: ("doc.md", text)), code_files()))
def test_small_window_chunks_still_cover_the_file_and_fit(
    counter: ModelTokenizer, file: tuple[str, str]
) -> None:
    path, text = file
    chunks = _chunks(counter, text, path=path, max_tokens=48)

    assert (_covers(text, chunks), _over_window(counter, chunks, 48), _misplaced(text, chunks)) == (
        True,
        [],
        [],
    )


# Identity and provenance


def test_same_input_gives_the_same_ids(counter: ModelTokenizer) -> None:
    first = [c.id for c in _chunks(counter, _sagas(), path=SAGAS)]
    second = [c.id for c in _chunks(counter, _sagas(), path=SAGAS)]

    assert first == second


def test_editing_one_section_leaves_other_section_ids_unchanged(
    counter: ModelTokenizer,
) -> None:
    text = _sagas()
    edited = text.replace("there is no central coordinator", "nobody is in charge")
    before = _chunks(counter, text, path=SAGAS)
    after = _chunks(counter, edited, path=SAGAS)

    assert [(b.heading, b.id == a.id) for b, a in zip(before, after, strict=True)] == [
        ("", True),
        ("Sagas", True),
        ("Sagas > When to Use", True),
        ("Sagas > Orchestration", True),
        ("Sagas > Choreography", False),
    ]


def test_inserting_a_section_keeps_every_existing_id(counter: ModelTokenizer) -> None:
    text = _sagas()
    inserted = text.replace(
        "## Orchestration",
        "## Timeouts\n\nGive every step its own deadline; a step that times out triggers "
        "compensation of the steps that already completed.\n\n## Orchestration",
    )
    before = {c.id for c in _chunks(counter, text, path=SAGAS)}
    after = {c.id for c in _chunks(counter, inserted, path=SAGAS)}

    assert (before - after, len(after - before)) == (set(), 1)


def test_identical_sections_get_distinct_ids(counter: ModelTokenizer) -> None:
    section = (
        "## Retry\n\nRetry each step with exponential backoff and a capped number of tries, "
        "then hand the saga to compensation.\n\n"
    )
    chunks = _chunks(counter, section * 3)

    assert ([c.text for c in chunks], len({c.id for c in chunks})) == ([section] * 3, 3)


def test_ids_differ_between_paths(counter: ModelTokenizer) -> None:
    here = {c.id for c in _chunks(counter, _sagas(), path="a/SKILL.md")}
    there = {c.id for c in _chunks(counter, _sagas(), path="b/SKILL.md")}

    assert here.isdisjoint(there)


def test_every_chunk_carries_its_path_file_hash_and_ordinal(counter: ModelTokenizer) -> None:
    chunks = _chunks(counter, _sagas(), path=SAGAS)

    assert [(c.path, c.file_sha256, c.ordinal) for c in chunks] == [
        (SAGAS, SHA, n) for n in range(5)
    ]


# Sizes and windows


def test_window_below_the_minimum_is_a_config_error(counter: ModelTokenizer) -> None:
    with pytest.raises(ConfigError, match="too small"):
        _chunks(counter, _sagas(), max_tokens=MIN_WINDOW_TOKENS - 1)


def test_max_tokens_above_the_model_window_is_capped_by_the_model(
    counter: ModelTokenizer,
) -> None:
    text = "# Sagas\n\n" + "Compensate every completed step in reverse order. " * 200

    assert _chunks(counter, text, max_tokens=100_000) == _chunks(counter, text)


@pytest.mark.parametrize("window", [MIN_WINDOW_TOKENS, 17, 24])
def test_word_cut_inside_a_line_is_recounted_to_fit(counter: ModelTokenizer, window: int) -> None:
    text = "---\nname: saga\n---\n" + "unaffable antidisestablishmentarianism " * 40

    assert _over_window(counter, _chunks(counter, text, max_tokens=window), window) == []


def test_long_context_header_takes_at_most_a_quarter_of_the_window(
    counter: ModelTokenizer,
) -> None:
    description = "Coordinate distributed transactions with sagas. " * 20
    text = f"---\nname: sagas\ndescription: {description}\n---\n# Sagas\n\n{description}\n"

    chunks = _chunks(counter, text, max_tokens=64)

    assert max(counter.count([f"{c.context}\n" for c in chunks])) <= 16


def test_small_json_is_one_data_chunk(counter: ModelTokenizer) -> None:
    text = '{\n  "name": "ralph-web-server",\n  "scripts": {"start": "node index.js"}\n}\n'

    chunks = _chunks(counter, text, path="server/package.json")

    assert [(c.kind, c.heading, c.start_line, c.end_line, c.text) for c in chunks] == [
        ("data", "", 1, 4, text)
    ]


def test_large_json_is_cut_between_lines_within_the_window(counter: ModelTokenizer) -> None:
    entries = ",\n".join(f'  "step_{n}": {{"compensate": "undo_{n}"}}' for n in range(60))
    text = f"{{\n{entries}\n}}\n"

    chunks = _chunks(counter, text, path="saga.json", max_tokens=64)

    assert {c.kind for c in chunks} == {"data"}
    assert all(c.text.endswith("\n") for c in chunks)
    assert "".join(c.text for c in chunks) == text
    assert _over_window(counter, chunks, 64) == []


def test_plain_text_splits_at_blank_lines(counter: ModelTokenizer) -> None:
    paragraph = "Compensate every completed step in reverse order when a later one fails."
    text = "\n\n".join(f"{paragraph} ({n})" for n in range(6)) + "\n"

    chunks = _chunks(counter, text, path="notes.txt", max_tokens=64)

    assert [(c.kind, c.start_line, c.end_line) for c in chunks] == [
        ("prose", 1, 6),
        ("prose", 7, 11),
    ]


# The real cited corpus (/work/shared/corpus)


@pytest.fixture(scope="module")
def real_files(shared_corpus: Path) -> dict[str, str]:
    selection = select_files(shared_corpus, agent_files=[SPECIALIST])
    return {path: (shared_corpus / path).read_text(encoding="utf-8") for path in selection.files}


@pytest.fixture(scope="module")
def real_chunks(
    counter: ModelTokenizer, real_files: dict[str, str]
) -> dict[int, dict[str, list[Chunk]]]:
    """The cited files' chunks at the model's window (0) and at 64 tokens."""
    return {
        max_tokens: {
            path: chunk_file(
                path,
                text,
                hashlib.sha256(text.encode()).hexdigest(),
                counter,
                max_tokens=max_tokens,
            )
            for path, text in real_files.items()
        }
        for max_tokens in (0, 64)
    }


@pytest.mark.parametrize("max_tokens", [0, 64])
def test_real_cited_files_chunk_with_exact_coverage(
    real_files: dict[str, str], real_chunks: dict[int, dict[str, list[Chunk]]], max_tokens: int
) -> None:
    chunked = real_chunks[max_tokens]

    uncovered = [path for path, text in real_files.items() if not _covers(text, chunked[path])]
    misplaced = [path for path, text in real_files.items() if _misplaced(text, chunked[path])]

    assert (uncovered, misplaced) == ([], [])


@pytest.mark.parametrize("max_tokens", [0, 64])
def test_real_cited_files_chunks_fit_the_window(
    counter: ModelTokenizer, real_chunks: dict[int, dict[str, list[Chunk]]], max_tokens: int
) -> None:
    window = max_tokens or counter.max_tokens

    over = {
        path: n
        for path, chunks in real_chunks[max_tokens].items()
        if (n := _over_window(counter, chunks, window))
    }

    assert over == {}


def test_real_markdown_with_frontmatter_has_a_frontmatter_chunk(
    real_files: dict[str, str], real_chunks: dict[int, dict[str, list[Chunk]]]
) -> None:
    with_front = [p for p, text in real_files.items() if p.endswith(".md") and text[:4] == "---\n"]

    missing = [p for p in with_front if real_chunks[0][p][0].kind != "frontmatter"]

    assert (bool(with_front), missing) == (True, [])
