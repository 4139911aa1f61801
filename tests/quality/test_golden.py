"""Retrieval quality on the golden questions of ../shared/eval, against recorded floors.

Marked `slow` (not in the default run; CI runs it): the numbers are the corpus's, and a change
that costs them fails here rather than in a user's answer.
"""

from __future__ import annotations

import pytest
from conftest import DEV_QUESTIONS

from bekb import KnowledgeBase

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEV_QUESTIONS.exists(), reason="no ../shared/eval/dev.jsonl"),
]


def test_retrieval_quality_on_the_dev_questions_stays_above_its_floor(cited_kb):
    # Floors a question or two under what the default settings measure (docs/benchmarks.md),
    # so a change that costs retrieval quality fails here, not in a user's answer.
    overall = cited_kb.evaluate(DEV_QUESTIONS).as_dict()["overall"]
    assert overall["hit@1"] >= 0.81
    assert overall["hit@5"] >= 0.96
    assert overall["mrr@10"] >= 0.87
    assert overall["evidence@5"] >= 0.89
    assert overall["abstain_rate"] >= 0.75
    assert overall["false_abstain_rate"] <= 0.05


def test_the_adapter_ranks_the_dev_questions_better_than_the_model_alone(cited_index):
    adapted = KnowledgeBase.open(cited_index).evaluate(DEV_QUESTIONS).as_dict()["overall"]
    plain = KnowledgeBase.open(cited_index, query_adapter=False).evaluate(DEV_QUESTIONS)

    assert adapted["mrr@10"] > plain.as_dict()["overall"]["mrr@10"] + 0.02
    assert adapted["hit@1"] > plain.as_dict()["overall"]["hit@1"]
