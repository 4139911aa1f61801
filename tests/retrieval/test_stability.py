"""Stable hits on the real cited index: the first n hits of `k = n` are the first n of any
larger k, for every core question of the dev files (passages are assembled before the cut)."""

from __future__ import annotations

import pytest

from bekb.evaluation import read_questions
from bekb.inputs import MAX_K


@pytest.fixture(scope="module")
def dev_questions(shared_corpus) -> list[str]:
    files = [shared_corpus.parent / "eval" / name for name in ("dev.jsonl", "dev2.jsonl")]
    if not all(f.exists() for f in files):
        pytest.skip("../shared/eval is not beside the checkout")
    return [q.question for f in files for q in read_questions(f) if q.corpus == "core"]


def place(hits):
    return [(h.path, h.start_line, h.end_line, h.text, h.score) for h in hits]


def test_the_first_hits_do_not_depend_on_k(cited_kb, dev_questions):
    assert len(dev_questions) > 80
    unstable = []
    for question in dev_questions:
        widest = place(cited_kb.search(question, k=MAX_K))
        for k in (1, 8):
            if place(cited_kb.search(question, k=k)) != widest[:k]:
                unstable.append((question, k))
    assert unstable == []
