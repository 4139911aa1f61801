"""Snippets: the lines of a passage that match a query, best by weight, in file order."""

from __future__ import annotations

from bekb.retrieval.bm25 import word_stem
from bekb.retrieval.snippets import matched_lines

TEXT = "\n".join(
    [
        "## Retries and backoff",  # line 10: a heading, never a snippet line
        "Retry with exponential backoff.",
        "Nothing to see here.",
        "Add jitter to the backoff so clients spread out.",
        "Idempotency keys make a retry safe.",
    ]
)


def weights(**by_word: float) -> dict[str, float]:
    return {word_stem(word): weight for word, weight in by_word.items()}


def test_the_heaviest_lines_come_back_in_file_order_with_the_stems_found():
    lines, stems = matched_lines(TEXT, 10, weights(backoff=1.0, jitter=3.0, retry=0.5), limit=2)

    assert lines == (11, 13)  # 1.5 and 4.0 beat line 14's 0.5; the heading is left out
    assert stems == tuple(sorted({word_stem("backoff"), word_stem("jitter"), word_stem("retry")}))


def test_words_match_by_stem_whatever_their_case_or_ending():
    lines, _ = matched_lines(TEXT, 1, weights(retries=1.0), limit=3)

    assert lines == (2, 5)  # "Retry" and "retry"; the heading's "Retries" is not a line shown


def test_a_passage_without_the_query_words_has_no_snippet():
    assert matched_lines(TEXT, 1, weights(kafka=2.0)) == ((), ())
    assert matched_lines(TEXT, 1, {}) == ((), ())
