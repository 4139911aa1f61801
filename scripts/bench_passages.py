"""Benchmark what a reader receives: passages, the first passage, abstention, stable hits.

Usage: .venv/bin/python scripts/bench_passages.py --work DIR [--docs docs/benchmarks.md]

Builds (or reuses) an index of the cited set under DIR with the default settings, then, for
`dev.jsonl` and `dev2.jsonl` side by side: `bekb eval` figures (evidence@1 beside
evidence@5, by kind too), the length of the passages `ask --no-llm` quotes, and how many core
questions' first hit changes between `-k 1` and `-k 8`. Prints the tables and writes the
"Passages and abstention" section.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchlib import DEV, DEV2, DOCS, SHARED_CORPUS, load1, percentile, write_sections

from bekb import KnowledgeBase
from bekb.answering.answer import quotable
from bekb.answering.extractive import PASSAGES
from bekb.evaluation import read_questions

SECTION = "Passages and abstention"
ROWS = (
    ("evidence@1", "evidence@1", "≥ 0.80"),
    ("evidence@5", "evidence@5", "≥ 0.93"),
    ("hit@1", "hit@1", "no lower than before"),
    ("MRR@10", "mrr@10", "no lower than before"),
    ("abstention on negatives", "abstain_rate", "≥ 0.80"),
    ("false abstention", "false_abstain_rate", "≤ 0.05"),
)


def measure(kb: KnowledgeBase, questions_file: Path) -> dict[str, object]:
    """Eval figures, quoted passage lengths and k-stability for one questions file."""
    report = kb.evaluate(questions_file).as_dict()
    core = [q for q in read_questions(questions_file) if q.corpus == "core"]
    lengths: list[int] = []
    changed = 0
    for question in core:
        first = kb.search(question.question, k=1)[:1]
        wider = kb.search(question.question, k=8)[:1]
        changed += [h.location for h in first] != [h.location for h in wider]
        if not question.negative:
            hits = kb.search(question.question, k=kb.settings.k)
            lengths += [h.end_line - h.start_line + 1 for h in quotable(hits, PASSAGES)]
    return {
        "overall": report["overall"],
        "by_kind": report["by_kind"],
        "lengths": lengths,
        "changed": changed,
        "core": len(core),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args()
    kb = KnowledgeBase.open(root=SHARED_CORPUS, index_dir=args.work / "cited")
    kb.index()
    started = time.perf_counter()
    runs = {"dev.jsonl": measure(kb, DEV), "dev2.jsonl": measure(kb, DEV2)}
    seconds = time.perf_counter() - started

    def figure(run: dict[str, object], key: str) -> str:
        value = run["overall"][key]  # type: ignore[index]
        return "-" if value is None else f"{value:.3f}"

    dev, dev2 = runs.values()
    lines = [
        f"## {SECTION}",
        "",
        "`.venv/bin/python scripts/bench_passages.py --work /tmp/bench-passages` (cited-set "
        "index, default settings; the `core` questions of each file; "
        f"{seconds:.0f} s, load {load1():.1f}).",
        "",
        "| metric | dev.jsonl | dev2.jsonl | target |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {figure(dev, key)} | {figure(dev2, key)} | {want} |"
              for name, key, want in ROWS]  # fmt: skip
    lines += [
        "| first hit changes between `-k 1` and `-k 8` | "
        f"{dev['changed']} of {dev['core']} | {dev2['changed']} of {dev2['core']} | 0 |",
    ]
    for name in ("p50", "p95", "max"):
        q = {"p50": 0.5, "p95": 0.95, "max": 1.0}[name]
        values = [percentile(run["lengths"], q) for run in runs.values()]  # type: ignore[arg-type]
        target = "≤ 50" if name == "p95" else ""
        lines.append(f"| quoted passage lines, {name} | {values[0]} | {values[1]} | {target} |")
    lines += ["", "evidence@1 / evidence@5 by kind:", "", "| kind | dev.jsonl | dev2.jsonl |",
              "|---|---|---|"]  # fmt: skip
    kinds = sorted(set(dev["by_kind"]) | set(dev2["by_kind"]))  # type: ignore[arg-type]
    for kind in kinds:
        if kind == "negative":
            continue
        cells = []
        for run in runs.values():
            k = run["by_kind"].get(kind)  # type: ignore[attr-defined]
            cells.append("-" if k is None else f"{k['evidence@1']:.2f} / {k['evidence@5']:.2f}")
        lines.append(f"| {kind} | {cells[0]} | {cells[1]} |")
    body = "\n".join(lines) + "\n"
    print(body)
    write_sections(args.docs, {SECTION: body})


if __name__ == "__main__":
    main()
