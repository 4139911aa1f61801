"""Golden-question metrics: whole metric dicts from small hand-made rankings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bekb.errors import UsageError
from bekb.evaluation import Outcome, Question, evaluate, has_evidence, rank_of, read_questions


def question(qid: str, relevant: tuple[str, ...] = ("a.md",), **fields: object) -> Question:
    values: dict[str, object] = {
        "question": f"question {qid}",
        "evidence": ("the answer",),
        "kind": "natural",
        "corpus": "core",
    }
    values.update(fields)
    return Question(id=qid, relevant=relevant, **values)  # type: ignore[arg-type]


def outcome(*paths: str, texts: tuple[str, ...] = (), abstained: bool = False) -> Outcome:
    return Outcome(paths=paths, texts=texts or tuple("" for _ in paths), abstained=abstained)


def test_rank_of_is_the_first_relevant_rank_within_the_depth():
    q = question("q", relevant=("b.md", "c.md"))
    assert rank_of(q, ["a.md", "c.md", "b.md"]) == 2
    assert rank_of(q, ["a.md"] * 10 + ["b.md"]) is None
    assert rank_of(q, ["a.md", "x.md"], copies=[(), ("b.md",)]) == 2


def test_has_evidence_ignores_whitespace_differences():
    q = question("q", evidence=("the  answer\nis here",))
    assert has_evidence(q, ["x", "so the answer is   here."])
    assert not has_evidence(q, ["the answer is elsewhere"])


def test_metrics_over_hand_made_rankings():
    questions = [
        question("first", kind="terse"),  # relevant first, evidence at rank 1
        question("third"),  # relevant third, evidence at rank 3
        question("missed"),  # never found
        question("neg-kept", relevant=(), evidence=(), kind="negative"),
        question("neg-answered", relevant=(), evidence=(), kind="negative"),
    ]
    outcomes = {
        "first": outcome("a.md", "z.md", texts=("the answer", "")),
        "third": outcome("x.md", "y.md", "a.md", texts=("", "", "see the answer")),
        "missed": outcome("x.md", "y.md", abstained=True),
        "neg-kept": outcome("x.md", abstained=True),
        "neg-answered": outcome("x.md"),
    }
    report = evaluate(questions, lambda q: outcomes[q.id]).as_dict()

    assert report["overall"] == {
        "n": 5,
        "hit@1": round(1 / 3, 4),
        "hit@5": round(2 / 3, 4),
        "mrr@10": round((1 + 1 / 3) / 3, 4),
        "evidence@1": round(1 / 3, 4),
        "evidence@5": round(2 / 3, 4),
        "abstain_rate": 0.5,
        "false_abstain_rate": round(1 / 3, 4),
    }
    assert report["by_kind"]["terse"] == {
        "n": 1,
        "hit@1": 1.0,
        "hit@5": 1.0,
        "mrr@10": 1.0,
        "evidence@1": 1.0,
        "evidence@5": 1.0,
        "abstain_rate": None,
        "false_abstain_rate": 0.0,
    }
    assert [m["id"] for m in report["misses"]] == ["third", "missed", "neg-answered"]
    assert report["misses"][0] == {
        "id": "third",
        "question": "question third",
        "rank": 3,
        "evidence": True,
        "top": ["x.md", "y.md", "a.md"],
    }


def test_questions_left_out_are_counted_as_skipped():
    questions = [question("core"), question("full", corpus="full")]
    report = evaluate(questions, lambda q: outcome("a.md"), include=lambda q: q.corpus == "core")
    assert (report.overall.n, report.skipped) == (1, 1)


def test_read_questions_reads_the_dev_format(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    row = {"id": "a1", "question": "q?", "relevant": ["a.md"], "evidence": ["e"], "kind": "code"}
    path.write_text(json.dumps(row) + "\n\n", encoding="utf-8")
    assert read_questions(path) == [
        Question(
            id="a1", question="q?", relevant=("a.md",), evidence=("e",), kind="code", corpus="core"
        )
    ]


def test_a_malformed_line_is_a_usage_error_naming_it(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "q"}\n{"question": "no id"}\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"q\.jsonl:2: not a golden question"):
        read_questions(path)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"id": "a"}', "'question' is missing, empty or not text"),
        ('{"id": "a", "question": 5}', "'question' is missing, empty or not text"),
        ('{"question": "q"}', "'id' is missing or empty"),
        ('{"id": "a", "question": "' + "q" * 4001 + '"}', "the question is 4001 characters"),
        (
            '{"id": "a", "question": "q", "relevant": "x.md"}',
            "'relevant' must be a list of strings",
        ),
    ],
)
def test_a_malformed_question_says_what_is_wrong_once(tmp_path: Path, line: str, why: str):
    path = tmp_path / "q.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(UsageError) as raised:
        read_questions(path)
    assert str(raised.value).startswith(f"{path}:1: not a golden question ({why}")
