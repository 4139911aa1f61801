"""bekb against the naive llama-index pipeline: build, cold query and retrieval quality.

Usage: .venv/bin/python scripts/bench_naive.py [--scope cited|workspace] [--docs docs/benchmarks.md]

Needs the `bench` extra (`pip install -e '.[bench]'`: the naive pipeline's llama-index
integrations). In one run, on the same files (bekb's own selection of ../shared/corpus, read
only) and the same bundled model, each step a fresh process (wall time and peak RSS):
  - build: `bekb index` (its report's stage timings) and `naive_llamaindex.py build`;
  - cold query: one `bekb search` and one `naive_llamaindex.py query`, 3 times each, median;
  - quality: `bekb eval` and `naive_llamaindex.py eval` on dev.jsonl and dev2.jsonl.
Prints the table and writes the "bekb and the naive pipeline" section of the docs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import DEV, DEV2, DOCS, SHARED_CORPUS, last_json, load1, measured, write_sections

NAIVE = Path(__file__).with_name("naive_llamaindex.py")
BEKB = Path(sys.executable).with_name("bekb")
SECTION = "bekb and the naive pipeline"
QUERY = "how do I do sagas"
METRICS = ("hit@1", "hit@5", "mrr@10", "evidence@1", "evidence@5")


def bekb(index_dir: Path, scope: str, *args: str) -> list[str]:
    return [str(BEKB), "--root", str(SHARED_CORPUS), "--index-dir", str(index_dir),
            "--scope", scope, *args]  # fmt: skip


def naive(*args: str) -> list[str]:
    return [sys.executable, str(NAIVE), *args]


def measure(work: Path, scope: str) -> dict[str, Any]:
    ours, theirs = work / "bekb", work / "naive"
    out: dict[str, Any] = {"load_start": load1()}
    for name, command in (
        ("bekb_build", bekb(ours, scope, "index", "--json")),
        ("naive_build", naive("build", str(SHARED_CORPUS), str(theirs), "--scope", scope)),
    ):
        built = measured(command)
        report = json.loads(built["stdout"]) if name == "bekb_build" else last_json(built["stdout"])
        out[name] = {**built, "report": report}
    cold_ours = bekb(ours, scope, "search", QUERY, "--json")
    out["bekb_cold"] = [measured(cold_ours)["wall"] for _ in range(3)]
    out["naive_cold"] = [measured(naive("query", str(theirs), QUERY))["wall"] for _ in range(3)]
    for name, questions in (("dev", DEV), ("dev2", DEV2)):
        ours_eval = measured(bekb(ours, scope, "eval", str(questions), "--json"))
        theirs_eval = measured(naive("eval", str(theirs), str(questions), "--scope", scope))
        out[f"bekb_{name}"] = json.loads(ours_eval["stdout"])["overall"]
        out[f"naive_{name}"] = last_json(theirs_eval["stdout"])["eval"]["overall"]
    out["load_end"] = load1()
    return out


def table(r: dict[str, Any], scope: str, command: str) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    rows = ["| | bekb | naive | bekb/naive |", "| --- | --- | --- | --- |"]
    for name in ("dev", "dev2"):
        for metric in METRICS:
            a, b = r[f"bekb_{name}"].get(metric, 0.0), r[f"naive_{name}"].get(metric, 0.0)
            rows.append(f"| {name} {metric} | {a:.3f} | {b:.3f} | {ratio(a, b)} |")
    a, b = r["bekb_build"]["wall"], r["naive_build"]["wall"]
    rows.append(f"| build (process wall) | {a:.1f} s | {b:.1f} s | {ratio(a, b)} |")
    a, b = r["bekb_build"]["rss_mb"], r["naive_build"]["rss_mb"]
    rows.append(f"| build peak RSS | {a:.0f} MB | {b:.0f} MB | {ratio(a, b)} |")
    a, b = statistics.median(r["bekb_cold"]), statistics.median(r["naive_cold"])
    rows.append(f"| cold query (process wall, median of 3) | {a:.2f} s | {b:.2f} s | "
                f"{ratio(a, b)} |")  # fmt: skip
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in r["bekb_build"]["report"]["timings"].items())
    return (
        f"`{command}`: scope `{scope}`, 1-minute load {r['load_start']:.1f} at the start and "
        f"{r['load_end']:.1f} at the end. Naive: `scripts/naive_llamaindex.py` (SentenceSplitter "
        "1024/200, HuggingFaceEmbedding over the same bundled model, Chroma, dense top 10) on "
        "the files bekb selects. Quality: core questions (and `full` ones in workspace scope), "
        "scored by `bekb.evaluation` for both.\n\n"
        + "\n".join(rows)
        + f"\n\nbekb's build by stage (its `IndexReport.timings`): {stages}.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", choices=["cited", "workspace"], default="cited")
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args()
    command = " ".join([".venv/bin/python scripts/bench_naive.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="bekb-bench-naive-") as tmp:
        results = measure(Path(tmp), args.scope)
    text = table(results, args.scope, command)
    print(text)
    print(json.dumps({k: v for k, v in results.items() if k.endswith(("dev", "dev2"))}))
    write_sections(args.docs, {SECTION: f"## {SECTION}\n\n{text}"})


if __name__ == "__main__":
    main()
