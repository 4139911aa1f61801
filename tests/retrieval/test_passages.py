"""Passages: the shape of what a hit shows, from ranked chunks (bekb.retrieval.passages)."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bekb.chunking import chunk_file
from bekb.domain import Chunk, HitExplain
from bekb.embedding.model import resolve_model
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.retrieval.passages import MAX_CODE_BLOCKS, MAX_LINES, MIN_TEXT_LINES, assemble
from bekb.settings import DEFAULT_EMBED_MODEL

EXAMPLES = int(os.environ.get("BEKB_PROPERTY_EXAMPLES", "60"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None)
BODY = "one\ntwo\nthree\nfour\n"


def chunk(
    ordinal: int,
    heading: str = "Sagas > Orchestration",
    path: str = "a.md",
    text: str = BODY,
    kind: str = "prose",
    start: int = 0,
) -> Chunk:
    """A chunk; by default the file's chunks are all BODY-long and follow each other."""
    lines = text.count("\n")
    start = start or ordinal * BODY.count("\n") + 1
    return Chunk(
        id=f"{path}-{ordinal}",
        path=path,
        ordinal=ordinal,
        heading=heading,
        start_line=start,
        end_line=start + lines - 1,
        kind=kind,  # type: ignore[arg-type]
        text=text,
        context="",
        file_sha256="x",
    )


def ranked(*chunks: Chunk) -> list[tuple[Chunk, HitExplain]]:
    return [(c, HitExplain(fused=1.0 / (n + 1))) for n, c in enumerate(chunks)]


def lookup(chunks: list[Chunk]):
    by_place = {(c.path, c.ordinal): c for c in chunks}
    return lambda c, step: by_place.get((c.path, c.ordinal + step))


def test_adjacent_chunks_of_one_section_are_one_passage_in_file_order():
    file = [chunk(2), chunk(3)]
    hits = assemble(ranked(file[1], file[0]), lookup(file))
    assert [(h.start_line, h.end_line, h.text, h.chunk_ids, h.score) for h in hits] == [
        (9, 16, BODY + BODY, ("a.md-2", "a.md-3"), 1.0)
    ]


def test_chunks_of_other_sections_or_files_stay_apart():
    file = [chunk(1), chunk(2, heading="Sagas > Choreography"), chunk(3, path="b.md"), chunk(5)]
    hits = assemble(ranked(*file), lookup(file))
    assert [(h.path, h.start_line) for h in hits] == [
        ("a.md", 5),
        ("a.md", 9),
        ("b.md", 13),
        ("a.md", 21),
    ]


def test_a_passage_is_shown_under_the_label_of_a_chunk_that_joined_two_sections():
    from dataclasses import replace

    joined = replace(chunk(2), label="Sagas")  # a short section joined to "Orchestration"
    file = [joined, chunk(3)]

    (alone,) = assemble(ranked(joined), lambda c, step: None)
    (both,) = assemble(ranked(file[1], file[0]), lookup(file))

    assert (alone.heading, both.heading, both.chunk_ids) == ("Sagas", "Sagas", ("a.md-2", "a.md-3"))


def test_a_bare_heading_takes_in_what_it_introduces():
    file = [chunk(0, text="## Read models\n"), chunk(1, start=2), chunk(2, start=6)]
    hits = assemble(ranked(file[0]), lookup(file))
    assert hits[0].chunk_ids == ("a.md-0", "a.md-1")
    assert hits[0].text == "## Read models\n" + BODY


def test_frontmatter_alone_takes_in_the_opening_of_the_document():
    front = chunk(0, heading="", text="---\nname: x\n---\n", kind="frontmatter")
    file = [front, chunk(1)]
    [hit] = assemble(ranked(file[0]), lookup(file))
    assert hit.chunk_ids == ("a.md-0", "a.md-1")
    assert hit.kind == "prose"


def test_code_comes_with_the_prose_that_introduces_it():
    code = "```python\ndef undo():\n    pass\n```\n"
    file = [chunk(0), chunk(1, text=code, kind="code")]
    [hit] = assemble(ranked(file[1]), lookup(file))
    assert hit.text == BODY + code
    assert (hit.start_line, hit.end_line) == (1, 8)


def test_blank_lines_left_between_chunks_are_put_back():
    file = [chunk(0), chunk(1, start=7)]  # lines 5 and 6 were blank
    [hit] = assemble(ranked(*file), lookup(file))
    assert hit.text == BODY + "\n\n" + BODY
    assert hit.text.split("\n")[10 - hit.start_line] == "four"  # line 10 of the file


def test_a_passage_does_not_merge_a_second_code_block():
    code = "```python\ndef undo():\n    pass\n```\n"
    file = [chunk(0, text=code, kind="code"), chunk(1, text=code, kind="code")]
    hits = assemble(ranked(*file), lookup(file))
    assert [h.chunk_ids for h in hits] == [("a.md-0",), ("a.md-1",)]


def test_a_passage_does_not_grow_past_the_line_bound():
    long = "".join(f"line {n}\n" for n in range(30))
    file = [chunk(0, text=long, start=1), chunk(1, text=long, start=31)]
    hits = assemble(ranked(*file), lookup(file))
    assert [h.chunk_ids for h in hits] == [("a.md-0",), ("a.md-1",)]


# Generated documents: frontmatter or not, headed sections of prose, lists and fenced code.
WORDS = st.sampled_from(["saga", "step", "order", "payment", "refund", "retry", "event"])
LINE = st.lists(WORDS, min_size=1, max_size=8).map(" ".join)
PARAGRAPH = st.lists(LINE, min_size=1, max_size=6).map("\n".join)
LIST = st.lists(LINE, min_size=1, max_size=5).map(lambda ls: "\n".join(f"- {x}" for x in ls))
CODE = st.lists(LINE, min_size=1, max_size=12).map(lambda ls: "\n".join(["```python", *ls, "```"]))
HEADING = st.tuples(st.integers(1, 3), LINE).map(lambda t: "#" * t[0] + " " + t[1])
SECTION = st.tuples(HEADING, st.lists(st.one_of(PARAGRAPH, LIST, CODE), max_size=5), PARAGRAPH)
FRONTMATTER = st.just("---\nname: doc\ndescription: a document\n---")


@st.composite
def documents(draw: st.DrawFn) -> str:
    parts = [draw(FRONTMATTER)] if draw(st.booleans()) else []
    for heading, blocks, last in draw(st.lists(SECTION, min_size=1, max_size=6)):
        parts.extend([heading, *blocks, last])
    return "\n\n".join(parts) + "\n"


@pytest.fixture(scope="module")
def counter() -> ModelTokenizer:
    return ModelTokenizer.for_model(resolve_model(DEFAULT_EMBED_MODEL))


def says(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))


def fenced_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line numbers of each fenced block."""
    blocks, start = [], None
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            if start is None:
                start = number
            else:
                blocks.append((start, number))
                start = None
    return blocks


def fences_opened(lines: list[str]) -> int:
    """Fenced code blocks opened in `lines` (closed or not)."""
    fences = [line for line in lines if line.startswith("```")]
    return (len(fences) + 1) // 2


@PROPERTY
@given(document=documents(), data=st.data())
def test_passages_from_any_ranking_of_a_generated_document(counter, document, data):
    chunks = chunk_file("doc.md", document, "x", counter, max_tokens=48)
    order = data.draw(st.permutations(chunks))
    candidates = order[: data.draw(st.integers(1, len(order)))]
    hits = assemble(ranked(*candidates), lookup(chunks))
    lines = document.splitlines()
    by_id = {c.id: c for c in chunks}
    in_frontmatter = {n for c in chunks if c.kind == "frontmatter"
                      for n in range(c.start_line, c.end_line + 1)}  # fmt: skip

    # Nothing ranked is lost (but a chunk saying nothing on its own, such as frontmatter,
    # that an earlier passage could not take in), nothing is shown twice, the best-ranked
    # passage comes first.
    shown = [cid for h in hits for cid in h.chunk_ids]
    assert len(shown) == len(set(shown))
    for lost in {c.id for c in candidates} - set(shown):
        assert by_id[lost].kind == "frontmatter" or says(by_id[lost].text) == 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        members = [by_id[cid] for cid in hit.chunk_ids]
        assert [c.ordinal for c in members] == list(
            range(members[0].ordinal, members[-1].ordinal + 1)
        )
        # The passage is the file's own lines, line for line (whitespace-only lines blank).
        assert [line.strip() for line in hit.text.splitlines()] == [
            line.strip() for line in lines[hit.start_line - 1 : hit.end_line]
        ]
        # Never a bare heading or frontmatter alone (every generated section has prose).
        body = [lines[n - 1] for n in range(hit.start_line, hit.end_line + 1)
                if n not in in_frontmatter]  # fmt: skip
        assert says("\n".join(body)) > 0, hit.text
        # Bounded: past the bounds only while completing a heading or fragment (or when one
        # chunk alone holds several code blocks): what the passage held before the chunk that
        # crossed a bound said too little. Completion runs forward from the anchor (the
        # ranked chunk the passage scores as); later joins add lines only within the line
        # bound and no code block past it.
        anchor = candidates[round(1 / hit.score) - 1]
        start = [c.id for c in members].index(anchor.id)
        bound = max(MAX_CODE_BLOCKS, max(len(fenced_blocks(c.text.splitlines())) for c in members))
        crossed = []
        if len(members) > 1 and hit.end_line - hit.start_line + 1 > MAX_LINES:
            crossed.append((0, len(members) - 1))
        if len(fenced_blocks(hit.text.splitlines())) > bound:
            opened = [fences_opened(lines[anchor.start_line - 1 : c.end_line]) for c in members]
            crossing = next(i for i in range(start, len(members)) if opened[i] > bound)
            crossed.append((start, crossing))
        for first, at in crossed:
            head = members[first:at]
            assert (
                head[-1].kind == "frontmatter"
                or sum(says(c.text) for c in head if c.kind != "frontmatter") < MIN_TEXT_LINES
            )
    # A code block that one chunk holds is shown whole wherever any of it is shown.
    for first, last in fenced_blocks(lines):
        if not any(c.start_line <= first and last <= c.end_line for c in chunks):
            continue
        for hit in hits:
            if hit.start_line <= last and first <= hit.end_line:
                assert hit.start_line <= first and last <= hit.end_line


def test_real_headings_never_shown_bare(cited_kb):
    for query in ["cqrs read model", "saga compensation", "graphql dataloader n+1"]:
        for hit in cited_kb.search(query, k=8):
            assert says(re.sub(r"(?s)\A---\n.*?\n---\n", "", hit.text)) > 0, hit.location
