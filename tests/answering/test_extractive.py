"""The keyless answer: best passages quoted whole under numbered citations."""

from __future__ import annotations

from bekb.answering.extractive import PASSAGES, abstention, extractive_answer, whole_code_blocks
from bekb.domain import Chunk, Citation, Hit

CODE = "```python\ndef compensate():\n    undo()\n```\n"


def hit(n: int, text: str = "", heading: str = "Sagas") -> Hit:
    return Hit(f"doc{n}.md", heading, n, n + 4, text or f"passage {n}\n", 1.0 / n)


def test_quotes_the_best_passages_with_numbered_citations():
    text, citations = extractive_answer([hit(1), hit(2, CODE), hit(3), hit(4)], persona="bob")
    assert citations == (
        Citation(1, "doc1.md", "Sagas", 1, 5, "passage 1\n"),
        Citation(2, "doc2.md", "Sagas", 2, 6, CODE),
        Citation(3, "doc3.md", "Sagas", 3, 7, "passage 3\n"),
    )
    assert len(citations) == PASSAGES
    assert text == (
        "From bob's knowledge base, the most relevant passages:\n\n"
        "[1] doc1.md#Sagas (lines 1-5)\n\npassage 1\n\n"
        "[2] doc2.md#Sagas (lines 2-6)\n\n" + CODE.strip() + "\n\n"
        "[3] doc3.md#Sagas (lines 3-7)\n\npassage 3\n"
    )


def test_code_blocks_are_quoted_whole():
    text, _ = extractive_answer([hit(1, CODE)], persona="bob")
    assert CODE.strip() in text


def test_stale_hits_give_stale_citations_marked_in_the_text():
    stale = Hit("a.md", "", 1, 2, "x\n", 1.0, stale=True)
    text, citations = extractive_answer([stale], persona="")
    assert citations[0].stale
    assert "[1] a.md (lines 1-2)  (changed since indexing)" in text
    assert citations[0].label == "a.md (lines 1-2)"


def test_abstention_names_the_nearest_topics_once_each():
    hits = [hit(1), hit(1), hit(2, heading="")]
    assert abstention("  knitting?  ", hits) == (
        "The knowledge base does not cover this question: knitting?\n"
        "Nearest topics it does cover:\n"
        "- doc1.md#Sagas\n"
        "- doc2.md\n"
    )


def chunk(ordinal: int, text: str) -> Chunk:
    return Chunk(
        f"c{ordinal}",
        "a.md",
        ordinal,
        "H",
        ordinal * 10 + 1,
        ordinal * 10 + 9,
        "prose",
        text,
        "",
        "x",
    )


FILE = [
    chunk(0, "# Intro\n\nSome prose.\n"),
    chunk(1, "```python\ndef a():\n"),
    chunk(2, "    return 1\n"),
    chunk(3, "```\n\nAfter.\n"),
    chunk(4, "More prose.\n"),
]


def test_a_passage_inside_a_split_code_block_is_widened_to_the_whole_block():
    inside = Hit("a.md", "H", 21, 29, "    return 1\n", 1.0, chunk_ids=("c2",))
    widened = whole_code_blocks(inside, FILE)
    assert (widened.text, widened.start_line, widened.end_line, widened.chunk_ids) == (
        "```python\ndef a():\n    return 1\n```\n\nAfter.\n",
        11,
        39,
        ("c1", "c2", "c3"),
    )


def test_a_passage_without_cut_code_is_left_alone():
    prose = Hit("a.md", "H", 41, 49, "More prose.\n", 1.0, chunk_ids=("c4",))
    assert whole_code_blocks(prose, FILE) is prose


def test_a_passage_from_an_unknown_chunk_is_left_alone():
    stranger = Hit("a.md", "H", 1, 2, "x\n", 1.0, chunk_ids=("gone",))
    assert whole_code_blocks(stranger, FILE) is stranger
