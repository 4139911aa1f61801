"""The keyless answer: the best passages quoted under numbered citations, by location."""

from __future__ import annotations

from bekb.answering.extractive import PASSAGES, abstention, extractive_answer, not_covered
from bekb.domain import Citation, Hit

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
        "[1] doc1.md:1-5  Sagas\n\npassage 1\n\n"
        "[2] doc2.md:2-6  Sagas\n\n" + CODE.strip() + "\n\n"
        "[3] doc3.md:3-7  Sagas\n\npassage 3\n"
    )


def test_a_long_heading_trail_is_shown_by_its_last_two_parts():
    text, citations = extractive_answer([hit(1, heading="A > B > C")], persona="")
    assert "[1] doc1.md:1-5  B > C\n" in text
    assert citations[0].heading == "A > B > C"


def test_stale_hits_give_stale_citations_marked_in_the_text():
    stale = Hit("a.md", "", 1, 2, "x\n", 1.0, stale=True)
    text, citations = extractive_answer([stale], persona="")
    assert citations[0].stale
    assert "[1] a.md:1-2  (changed since indexing)" in text
    assert citations[0].location == "a.md:1-2"


def test_what_the_corpus_never_mentions_is_said_in_one_line_first():
    text, _ = extractive_answer([hit(1)], persona="", uncovered=["Kafka", "KRaft"])
    assert text.startswith("The knowledge base never mentions Kafka or KRaft.\n\n")
    assert not_covered(["A", "B", "C"]) == "The knowledge base never mentions A, B or C."


def test_abstention_names_the_nearest_topics_once_each():
    hits = [hit(1), hit(1), hit(2, heading="")]
    assert abstention("  knitting?  ", hits, ["Knitty"]) == (
        "The knowledge base does not cover this question: knitting?\n"
        "The knowledge base never mentions Knitty.\n"
        "Nearest topics it does cover:\n"
        "- doc1.md:1-5  Sagas\n"
        "- doc2.md:2-6\n"
    )
