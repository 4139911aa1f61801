"""Markdown chunking: heading sections, whole fenced blocks, frontmatter as metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES

from bekb.chunking import chunk_file
from bekb.chunking.markdown import Frontmatter, parse_frontmatter, sections
from bekb.domain import Chunk
from bekb.embedding.model import resolve_model
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.settings import DEFAULT_EMBED_MODEL

SAGAS = "alpha/skills/sagas/SKILL.md"
SAGAS_DESCRIPTION = "Coordinate distributed transactions with sagas and compensating actions."
# Enough words that a section stands alone (over MIN_SECTION_TOKENS and MIN_CHUNK_TOKENS).
FILLER = (
    "Each participant records its progress in a local table, so that a failure in a later "
    "step can be compensated in reverse order."
)


@pytest.fixture(scope="module")
def counter() -> ModelTokenizer:
    return ModelTokenizer.for_model(resolve_model(DEFAULT_EMBED_MODEL))


def _chunks(
    counter: ModelTokenizer, text: str, *, path: str = "doc.md", max_tokens: int = 0
) -> list[Chunk]:
    return chunk_file(path, text, "f" * 64, counter, max_tokens=max_tokens)


def _spans(chunks: list[Chunk]) -> list[tuple[str, str, int, int]]:
    return [(c.kind, c.heading, c.start_line, c.end_line) for c in chunks]


def _sagas(counter: ModelTokenizer, max_tokens: int = 0) -> list[Chunk]:
    text = (FIXTURES / "corpus" / SAGAS).read_text(encoding="utf-8")
    return _chunks(counter, text, path=SAGAS, max_tokens=max_tokens)


def test_markdown_splits_on_headings(counter: ModelTokenizer) -> None:
    assert _spans(_sagas(counter)) == [
        ("frontmatter", "", 1, 4),
        ("prose", "Sagas", 5, 10),
        ("prose", "Sagas > When to Use", 11, 15),
        ("prose", "Sagas > Orchestration", 16, 28),
        ("prose", "Sagas > Choreography", 29, 31),
    ]


def test_heading_trail_follows_heading_levels(counter: ModelTokenizer) -> None:
    text = (
        f"# Sagas\n\n{FILLER}\n\n## Orchestration\n\n{FILLER}\n\n### Timeouts\n\n{FILLER}\n\n"
        f"## Choreography\n\n{FILLER}\n\n# Appendix\n\n{FILLER}\n"
    )

    assert [c.heading for c in _chunks(counter, text)] == [
        "Sagas",
        "Sagas > Orchestration",
        "Sagas > Orchestration > Timeouts",
        "Sagas > Choreography",
        "Appendix",
    ]


def test_section_is_split_by_size_at_paragraphs(counter: ModelTokenizer) -> None:
    paragraphs = "\n\n".join(f"{FILLER} Paragraph {n}." for n in range(1, 7))
    text = f"# Sagas\n\n{paragraphs}\n"

    chunks = _chunks(counter, text, max_tokens=64)

    assert _spans(chunks) == [
        ("prose", "Sagas", 1, 6),
        ("prose", "Sagas", 7, 10),
        ("prose", "Sagas", 11, 13),
    ]


def test_text_before_the_first_heading_has_an_empty_trail(counter: ModelTokenizer) -> None:
    text = f"{FILLER}\n\n# Sagas\n\n{FILLER}\n"

    assert _spans(_chunks(counter, text)) == [("prose", "", 1, 2), ("prose", "Sagas", 3, 5)]


def test_bare_heading_joins_the_section_after_it(counter: ModelTokenizer) -> None:
    text = f"# Sagas\n\n## Orchestration\n\n{FILLER}\n"

    assert _spans(_chunks(counter, text)) == [("prose", "Sagas > Orchestration", 1, 5)]


def test_a_bare_heading_joined_to_the_next_section_leaves_its_label_alone(
    counter: ModelTokenizer,
) -> None:
    (chunk,) = _chunks(counter, f"# Sagas\n\n## Orchestration\n\n{FILLER}\n")

    assert (chunk.heading, chunk.label) == ("Sagas > Orchestration", "")


def test_a_short_section_with_text_joined_to_the_next_is_labelled_by_their_shared_trail(
    counter: ModelTokenizer,
) -> None:
    text = f"# Retries\n\n## Backoff\n\nUse jitter.\n\n## Idempotency\n\n{FILLER}\n"

    (chunk,) = _chunks(counter, text)

    # The label covers both sections; what is embedded and assembled stays the section's own.
    assert (chunk.heading, chunk.label) == ("Retries > Idempotency", "Retries")
    assert chunk.context == "Retries\nRetries > Idempotency"


def test_only_the_chunk_holding_the_joined_section_takes_the_shared_label(
    counter: ModelTokenizer,
) -> None:
    body = "\n\n".join([FILLER] * 12)
    text = f"# Retries\n\n## Backoff\n\nUse jitter.\n\n## Idempotency\n\n{body}\n"

    chunks = _chunks(counter, text, max_tokens=128)

    assert len(chunks) > 1
    assert [c.label for c in chunks] == ["Retries"] + [""] * (len(chunks) - 1)
    assert {c.heading for c in chunks} == {"Retries > Idempotency"}


def test_tiny_trailing_piece_is_folded_into_the_chunk_before(counter: ModelTokenizer) -> None:
    text = f"# Sagas\n\n{FILLER}\n\n## Notes\n\n---\n"

    assert _spans(_chunks(counter, text)) == [("prose", "Sagas", 1, 7)]


def test_frontmatter_is_its_own_chunk(counter: ModelTokenizer) -> None:
    front = _sagas(counter)[0]

    assert (front.kind, front.start_line, front.end_line, front.text) == (
        "frontmatter",
        1,
        4,
        f"---\nname: sagas\ndescription: {SAGAS_DESCRIPTION}\n---\n",
    )


def test_frontmatter_name_heads_every_context_and_the_description_stays_searchable(
    counter: ModelTokenizer,
) -> None:
    chunks = _sagas(counter)
    assert [c.context for c in chunks] == [
        "sagas",
        "sagas\nSagas",
        "sagas\nSagas > When to Use",
        "sagas\nSagas > Orchestration",
        "sagas\nSagas > Choreography",
    ]
    assert chunks[0].kind == "frontmatter"
    assert SAGAS_DESCRIPTION in chunks[0].text


def test_embed_text_is_context_then_chunk_text(counter: ModelTokenizer) -> None:
    chunk = _sagas(counter)[-1]

    assert chunk.embed_text == (
        "sagas\nSagas > Choreography\n"
        "## Choreography\n\n"
        "Participants react to each other's events; there is no central coordinator.\n"
    )


def test_short_frontmatter_is_not_folded_into_the_body(counter: ModelTokenizer) -> None:
    text = f"---\nname: x\n---\n# Sagas\n\n{FILLER}\n"

    assert _spans(_chunks(counter, text)) == [
        ("frontmatter", "", 1, 3),
        ("prose", "Sagas", 4, 6),
    ]


def test_tiny_body_is_not_folded_into_the_frontmatter(counter: ModelTokenizer) -> None:
    text = f"---\nname: sagas\ndescription: {SAGAS_DESCRIPTION}\n---\nSee below.\n"

    assert _spans(_chunks(counter, text)) == [("frontmatter", "", 1, 4), ("prose", "", 5, 5)]


def test_title_falls_back_to_the_first_heading(counter: ModelTokenizer) -> None:
    text = f"{FILLER}\n\n# Token authentication\n\n## Refresh tokens\n\n{FILLER}\n"

    assert [c.context for c in _chunks(counter, text)] == [
        "Token authentication",
        "Token authentication\nToken authentication > Refresh tokens",
    ]


def test_title_falls_back_to_the_file_name(counter: ModelTokenizer) -> None:
    chunks = _chunks(counter, f"{FILLER}\n", path="notes/saga-notes.md")

    assert [c.context for c in chunks] == ["saga-notes"]


def test_fenced_block_is_never_split_when_it_fits(counter: ModelTokenizer) -> None:
    fence = "```python\n" + "".join(f"step_{n} = compensate({n})\n" for n in range(6)) + "```\n"
    text = f"# Sagas\n\n{FILLER}\n\n{FILLER}\n\n{fence}\n{FILLER}\n"

    chunks = _chunks(counter, text, max_tokens=96)

    # The first chunk has room for the fence's first lines, yet the fence moves on whole.
    assert ([(c.start_line, c.end_line) for c in chunks], [fence in c.text for c in chunks]) == (
        [(1, 6), (7, 16)],
        [False, True],
    )


def test_fenced_block_alone_over_the_limit_is_cut_between_lines(
    counter: ModelTokenizer,
) -> None:
    fence = "```\n" + "".join(f"step_{n} = compensate({n})\n" for n in range(40)) + "```\n"
    text = f"# Sagas\n\n{fence}"

    chunks = _chunks(counter, text, max_tokens=64)

    assert len(chunks) > 2
    assert all(c.text.endswith("\n") for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_fenced_chunk_has_kind_code(counter: ModelTokenizer) -> None:
    fence = "```python\n" + "".join(f"step_{n} = compensate({n})\n" for n in range(6)) + "```\n"
    text = f"# Sagas\n\n{FILLER}\n\n{FILLER}\n\n{fence}"

    chunks = _chunks(counter, text, max_tokens=64)

    assert [(c.kind, c.text) for c in chunks][-1] == ("code", fence)


def test_heading_inside_a_fence_is_not_a_heading(counter: ModelTokenizer) -> None:
    text = f"# Sagas\n\n```bash\n# install the tool\npip install saga\n```\n\n{FILLER}\n"

    assert [c.heading for c in _chunks(counter, text)] == ["Sagas"]


def test_tilde_fence_is_closed_only_by_tildes(counter: ModelTokenizer) -> None:
    text = f"# Sagas\n\n~~~\n```\n# still code\n~~~\n\n## After\n\n{FILLER}\n"

    assert [c.heading for c in _chunks(counter, text)] == ["Sagas > After"]


def test_unclosed_fence_runs_to_the_end_of_the_file(counter: ModelTokenizer) -> None:
    text = f"# Sagas\n\n{FILLER}\n\n```python\nx = 1\n\n## Not a heading\n\n{FILLER}\n"

    chunks = _chunks(counter, text)

    assert (_spans(chunks), "".join(c.text for c in chunks)) == ([("prose", "Sagas", 1, 10)], text)


def test_inline_triple_backticks_do_not_open_a_fence(counter: ModelTokenizer) -> None:
    text = f"# Sagas\n\n```saga.run()``` starts a saga. {FILLER}\n\n## Orchestration\n\n{FILLER}\n"

    assert [c.heading for c in _chunks(counter, text)] == ["Sagas", "Sagas > Orchestration"]


@pytest.mark.parametrize(
    ("line", "trail"),
    [
        pytest.param("## Using C#", ("Top", "Using C#"), id="hash-in-title"),
        pytest.param("## Orchestration ##", ("Top", "Orchestration"), id="closing-hashes"),
        pytest.param("   ## Indented", ("Top", "Indented"), id="three-space-indent"),
        pytest.param("##\tTabbed", ("Top", "Tabbed"), id="tab"),
        pytest.param("# #", (), id="only-closing-hashes"),
        pytest.param("####### Seven", ("Top",), id="seven-hashes"),
        pytest.param("#hashtag", ("Top",), id="no-space"),
        pytest.param("    ## Code", ("Top",), id="four-space-indent"),
    ],
)
def test_heading_syntax(counter: ModelTokenizer, line: str, trail: tuple[str, ...]) -> None:
    _front, parts = sections(f"# Top\n\ntext\n\n{line}\n\nbody\n", counter)

    assert parts[-1].trail == trail


def test_crlf_headings_and_frontmatter_are_recognised(counter: ModelTokenizer) -> None:
    text = (
        f"---\r\nname: sagas\r\ndescription: Saga notes.\r\n---\r\n# Sagas\r\n\r\n{FILLER}\r\n"
        f"\r\n## Orchestration\r\n\r\n{FILLER}\r\n"
    )

    chunks = _chunks(counter, text)

    assert ([(c.heading, c.context) for c in chunks], "".join(c.text for c in chunks)) == (
        [
            ("", "sagas"),
            ("Sagas", "sagas\nSagas"),
            ("Sagas > Orchestration", "sagas\nSagas > Orchestration"),
        ],
        text,
    )


def test_long_line_is_cut_into_chunks_on_that_line(counter: ModelTokenizer) -> None:
    line = " ".join(f"word{n}" for n in range(400))
    text = f"# Sagas\n\n{line}\n"

    chunks = _chunks(counter, text, max_tokens=64)

    assert len(chunks) > 5
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 2)] + [(3, 3)] * (len(chunks) - 1)
    assert "".join(c.text for c in chunks) == text


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n\n"], ids=["empty", "newline", "blank"])
def test_file_without_text_has_no_chunks(counter: ModelTokenizer, text: str) -> None:
    assert _chunks(counter, text) == []


def test_parse_frontmatter_reads_name_and_description() -> None:
    lines = ["---\n", "name: sagas\n", "description: >\n", "  Two lines\n", "  folded.\n"]

    front = parse_frontmatter([*lines, "...\n", "# Sagas\n"])

    assert front == Frontmatter(end=6, name="sagas", description="Two lines folded.")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("name: [unclosed\n", id="bad-yaml"),
        pytest.param("date: 2001-13-45\n", id="impossible-date"),
        pytest.param("- a list\n", id="not-a-mapping"),
        pytest.param("", id="empty"),
    ],
)
def test_unusable_frontmatter_is_still_frontmatter(body: str) -> None:
    assert parse_frontmatter(["---\n", body, "---\n", "# T\n"]) == Frontmatter(3, "", "")


def test_unusable_frontmatter_still_chunks(counter: ModelTokenizer) -> None:
    text = f"---\nname: sagas\ncreated: 2001-13-45\n---\n# Sagas\n\n{FILLER}\n"

    assert [(c.kind, c.context) for c in _chunks(counter, text)] == [
        ("frontmatter", "Sagas"),
        ("prose", "Sagas"),
    ]


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(["---\n", "name: x\n", "# T\n"], id="unclosed"),
        pytest.param(["\n", "---\n", "name: x\n", "---\n"], id="not-first-line"),
        pytest.param([], id="empty"),
    ],
)
def test_no_frontmatter_without_a_closed_block_on_line_one(lines: list[str]) -> None:
    assert parse_frontmatter(lines) is None


def test_fixture_files_keep_their_exact_text(counter: ModelTokenizer) -> None:
    corpus = FIXTURES / "corpus"
    texts = {p: p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.md"))}

    rebuilt = {
        p: "".join(c.text for c in _chunks(counter, text, path=Path(p).name))
        for p, text in texts.items()
    }

    assert rebuilt == texts
