"""Golden-question metrics: file hit@1/@5, MRR@10, evidence@1/@5, abstention rates, misses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bekb.domain import Hit
from bekb.errors import UsageError
from bekb.inputs import check_text


@dataclass(frozen=True)
class Question:
    """One golden question: what is asked and which files (and passages) answer it."""

    id: str
    question: str
    relevant: tuple[str, ...]
    evidence: tuple[str, ...]
    kind: str
    corpus: str

    @property
    def negative(self) -> bool:
        """A question the corpus does not cover (nothing is relevant)."""
        return not self.relevant


@dataclass(frozen=True)
class Outcome:
    """What retrieval did for one question: ranked paths and texts, and whether it abstained."""

    paths: tuple[str, ...]
    texts: tuple[str, ...]
    abstained: bool
    # Per rank, the other files holding that passage word for word (see `fold_copies`).
    copies: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def of(cls, hits: Sequence[Hit], *, abstained: bool) -> Outcome:
        """What a search returned, as the metrics read it."""
        return cls(
            paths=tuple(h.path for h in hits),
            copies=tuple(tuple(c.path for c in h.copies) for h in hits),
            texts=tuple(h.text for h in hits),
            abstained=abstained,
        )


@dataclass
class Metrics:
    """Aggregates over a set of questions (rates over the positive or negative ones)."""

    n: int = 0
    hit1: float = 0.0
    hit5: float = 0.0
    mrr10: float = 0.0
    evidence1: float = 0.0
    evidence5: float = 0.0
    abstained_negatives: int = 0
    negatives: int = 0
    false_abstentions: int = 0
    positives: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The `bekb eval --json` shape."""
        pos = max(self.positives, 1)
        return {
            "n": self.n,
            "hit@1": round(self.hit1 / pos, 4),
            "hit@5": round(self.hit5 / pos, 4),
            "mrr@10": round(self.mrr10 / pos, 4),
            "evidence@1": round(self.evidence1 / pos, 4),
            "evidence@5": round(self.evidence5 / pos, 4),
            "abstain_rate": round(self.abstained_negatives / self.negatives, 4)
            if self.negatives
            else None,
            "false_abstain_rate": round(self.false_abstentions / pos, 4),
        }


@dataclass
class Report:
    """Metrics overall, by kind and by corpus, plus the questions retrieval missed."""

    overall: Metrics = field(default_factory=Metrics)
    by_kind: dict[str, Metrics] = field(default_factory=dict)
    by_corpus: dict[str, Metrics] = field(default_factory=dict)
    misses: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The `bekb eval --json` shape."""
        return {
            "overall": self.overall.as_dict(),
            "by_kind": {k: m.as_dict() for k, m in sorted(self.by_kind.items())},
            "by_corpus": {k: m.as_dict() for k, m in sorted(self.by_corpus.items())},
            "misses": self.misses,
            "skipped": self.skipped,
        }


def read_questions(path: Path) -> list[Question]:
    """Questions from a JSONL file in the format of eval/dev.jsonl.

    Raises:
        UsageError: the file cannot be read as UTF-8, holds no question, or a line is not a
            golden question (the message names the line).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(_question(json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{path}:{number}: not a golden question ({exc})") from exc
    if not out:
        raise UsageError(f"{path} holds no questions (one JSON object per line)")
    return out


def _question(row: Any) -> Question:
    if not isinstance(row, dict):
        raise TypeError("a line must be a JSON object")
    # ValueError, not KeyError, whose message would be printed in quotes.
    if not isinstance(row.get("id"), str | int) or not str(row["id"]).strip():
        raise ValueError("'id' is missing or empty")
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        raise ValueError("'question' is missing, empty or not text")
    try:  # what every search checks, caught here before any question is searched
        check_text(row["question"], "question")
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    lists = {key: row.get(key, []) for key in ("relevant", "evidence")}
    for key, value in lists.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{key!r} must be a list of strings")
    return Question(
        id=str(row["id"]),
        question=str(row["question"]),
        relevant=tuple(lists["relevant"]),
        evidence=tuple(lists["evidence"]),
        kind=str(row.get("kind", "unknown")),
        corpus=str(row.get("corpus", "core")),
    )


def rank_of(
    question: Question,
    paths: Sequence[str],
    depth: int = 10,
    copies: Sequence[Sequence[str]] = (),
) -> int | None:
    """1-based rank of the first relevant path within `depth`, else None.

    `copies[i]` are other files whose identical passage was folded into rank i + 1: the
    reader got that text, so a relevant copy counts at that rank.
    """
    relevant = set(question.relevant)
    for rank, path in enumerate(paths[:depth], start=1):
        also = copies[rank - 1] if rank <= len(copies) else ()
        if path in relevant or relevant.intersection(also):
            return rank
    return None


def has_evidence(question: Question, texts: Sequence[str]) -> bool:
    """Whether any text contains an evidence passage (whitespace-collapsed)."""
    wanted = [" ".join(e.split()) for e in question.evidence]
    flat = [" ".join(t.split()) for t in texts]
    return any(e and e in t for e in wanted for t in flat)


def evaluate(
    questions: Iterable[Question],
    retrieve: Callable[[Question], Outcome],
    *,
    include: Callable[[Question], bool] = lambda q: True,
) -> Report:
    """Score `retrieve` on every question that `include` accepts."""
    report = Report()
    for question in questions:
        if not include(question):
            report.skipped += 1
            continue
        outcome = retrieve(question)
        buckets = [
            report.overall,
            report.by_kind.setdefault(question.kind, Metrics()),
            report.by_corpus.setdefault(question.corpus, Metrics()),
        ]
        rank = (
            None if question.negative else rank_of(question, outcome.paths, copies=outcome.copies)
        )
        evidence = not question.negative and has_evidence(question, outcome.texts[:5])
        first_evidence = evidence and has_evidence(question, outcome.texts[:1])
        for metrics in buckets:
            metrics.n += 1
            if question.negative:
                metrics.negatives += 1
                metrics.abstained_negatives += outcome.abstained
                continue
            metrics.positives += 1
            metrics.false_abstentions += outcome.abstained
            metrics.hit1 += rank == 1
            metrics.hit5 += rank is not None and rank <= 5
            metrics.mrr10 += 1.0 / rank if rank else 0.0
            metrics.evidence1 += first_evidence
            metrics.evidence5 += evidence
        if not question.negative and (rank is None or rank > 1 or not evidence):
            report.misses.append(
                {
                    "id": question.id,
                    "question": question.question,
                    "rank": rank,
                    "evidence": evidence,
                    "top": list(outcome.paths[:3]),
                }
            )
        elif question.negative and not outcome.abstained:
            report.misses.append(
                {
                    "id": question.id,
                    "question": question.question,
                    "rank": None,
                    "evidence": False,
                    "top": list(outcome.paths[:3]),
                }
            )
    return report
