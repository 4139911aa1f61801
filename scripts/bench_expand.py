"""Query expansion, simulated: recorded rewrites served by the local fake Messages API.

The real expansion path runs end to end (the anthropic SDK's structured-output request,
parsing, the disk cache, the search of each rewrite and the fusion), only the far end is
`tests/anthropic_server.py` answering each question with its line of the rewrites file.
Prints the eval table without and with expansion side by side, by kind; a second pass with
expansion checks that the cache answers every question (no request).

    flock /tmp/bekb-cpu.lock .venv/bin/python scripts/bench_expand.py \\
        --questions ../shared/eval/dev.jsonl --questions ../shared/eval/dev2.jsonl \\
        --rewrites ../shared/eval/dev-rewrites.jsonl --root ../shared/corpus --index-dir index

`--scope workspace` scores a workspace index (its `full` questions count too).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from anthropic_server import FakeAnthropic, Reply, text_block  # noqa: E402

from bekb import KnowledgeBase, Settings  # noqa: E402

# The eval keys shown, and their column labels.
COLUMNS = {
    "hit@1": "hit@1",
    "hit@5": "hit@5",
    "mrr@10": "mrr@10",
    "evidence@5": "evidence@5",
    "abstain_rate": "abstain",
    "false_abstain_rate": "false abstain",
}


def main() -> None:
    """Parse arguments, run both evaluations, print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, action="append", required=True)
    parser.add_argument("--rewrites", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument("--scope", choices=("cited", "workspace"), default=None)
    parser.add_argument("--json", action="store_true", help="Print {without, with} as JSON.")
    args = parser.parse_args()
    rewrites = _read_rewrites(args.rewrites)
    flags: dict[str, Any] = {}
    if args.root is not None:
        flags["root"] = args.root
    if args.index_dir is not None:
        flags["index_dir"] = args.index_dir
    if args.scope is not None:
        flags["scope"] = args.scope
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic() as server:
        questions = _joined(args.questions, Path(tmp) / "questions.jsonl")
        ids = _question_ids(args.questions)
        server.responder = lambda body: _reply(body, ids, rewrites)
        plain = Settings.load(**flags, anthropic_api_key="", expand=False)
        # A private cache: simulated rewrites must never answer a real run. The model's
        # export is shared, so no model is exported again.
        cache = Path(tmp) / "cache"
        cache.mkdir()
        if (plain.cache_folder / "onnx").is_dir():
            (cache / "onnx").symlink_to((plain.cache_folder / "onnx").resolve())
        expanded = Settings.load(
            **flags,
            cache_dir=cache,
            anthropic_api_key="sk-ant-bench",
            anthropic_base_url=server.url,
            expand=True,
        )
        without = KnowledgeBase(plain).evaluate(questions).as_dict()
        kb = KnowledgeBase(expanded)
        with_ = kb.evaluate(questions).as_dict()
        calls = len(server.requests)
        again = kb.evaluate(questions).as_dict()
        cached_calls = len(server.requests) - calls
    if again["overall"] != with_["overall"]:
        raise SystemExit("the cached re-run scored differently from the first run")
    if args.json:
        print(json.dumps({"without": without, "with": with_}, indent=2))
        return
    print(_table(without, with_))
    print(
        f"\nsimulated: {calls} expansion request(s) to the fake Messages API; "
        f"a second run with expansion made {cached_calls} (cache)."
    )


def _read_rewrites(path: Path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[str(row["id"])] = [str(q) for q in row["queries"]]
    return out


def _joined(files: list[Path], target: Path) -> Path:
    """One JSONL file of every question of `files` (ids must stay unique)."""
    lines = [
        line for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def _question_ids(files: list[Path]) -> dict[str, str]:
    """Each question's id, by its whitespace-collapsed text."""
    ids = {}
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                ids[" ".join(str(row["question"]).split())] = str(row["id"])
    return ids


def _reply(
    body: dict[str, Any], ids: dict[str, str], rewrites: dict[str, list[str]]
) -> Reply | None:
    """The recorded rewrites of the question this expansion request asks about."""
    messages = body.get("messages") or [{}]
    question = messages[-1].get("content")
    if not isinstance(question, str):
        return None
    queries = rewrites.get(ids.get(" ".join(question.split()), ""), [])
    keywords, rephrasing, passage = [*queries, "", "", ""][:3]
    text = json.dumps({"keywords": keywords, "rephrasing": rephrasing, "passage": passage})
    return Reply(blocks=(text_block([text]),))


def _table(without: dict[str, Any], with_: dict[str, Any]) -> str:
    head = f"{'':18}{'n':>4}  " + "  ".join(f"{label:>15}" for label in COLUMNS.values())
    rows = [head, f"{'':24}" + "  ".join(f"{'without → with':>15}" for _ in COLUMNS)]
    groups = [("overall", without["overall"], with_["overall"])]
    groups += [(f"kind {k}", m, with_["by_kind"][k]) for k, m in without["by_kind"].items()]
    for name, a, b in groups:
        cells = []
        for column in COLUMNS:
            x, y = a[column], b[column]
            # A kind with negatives is the negatives (the corpus covers none of them).
            negatives_only = name != "overall" and a["abstain_rate"] is not None
            shown = column == "abstain_rate" or not negatives_only
            cells.append("-" if x is None or not shown else f"{x:.3f} → {y:.3f}")
        rows.append(f"{name:18}{a['n']:>4}  " + "  ".join(f"{c:>15}" for c in cells))
    return "\n".join(rows)


if __name__ == "__main__":
    main()
