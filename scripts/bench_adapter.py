"""Benchmark the query adapter: dev-set quality with and without it, on corpora of four sizes.

Usage: .venv/bin/python scripts/bench_adapter.py --work DIR [--seeds 5] [--docs docs/benchmarks.md]

Four indexes under DIR (built on first use, reused by later runs): the specialist's cited set;
the cited set plus the plugins it draws on (include globs); every skill of every plugin; the
whole workspace. Each gets an adapter fitted whatever its size (the size limit lifted for the
measurement), then the dev questions are scored with it and without it in one process. On
the cited set the adapter is also refitted with `--seeds` different seeds, to show how much
of a difference is the fit's luck. Prints the tables and writes the "Query adapter" section.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from benchlib import DEV, DOCS, SHARED_CORPUS, write_sections

from bekb import KnowledgeBase, Settings
from bekb.retrieval import adapter

SECTION = "Query adapter"
METRICS = ("hit@1", "hit@5", "mrr@10", "evidence@5", "abstain_rate", "false_abstain_rate")
PLUGINS = (
    "agents/plugins/backend-development/**/*.md",
    "agents/plugins/database-design/**/*.md",
    "agents/plugins/api-scaffolding/**/*.md",
    "agents/plugins/backend-api-security/**/*.md",
    "taches-cc-resources/**/*.md",
)
CORPORA: dict[str, dict[str, Any]] = {
    "cited set": {},
    "cited + its plugins": {"include": PLUGINS},
    "every plugin's skills": {"include": ("agents/plugins/*/skills/**/*.md",)},
    "workspace": {"scope": "workspace"},
}


def settings(work: Path, name: str, **extra: Any) -> Settings:
    """Settings of the index of corpus `name` under `work`."""
    folder = work / name.replace(" ", "-").replace("'", "").replace("+", "plus")
    return Settings(
        root=SHARED_CORPUS, index_dir=folder, lock_timeout=600, **CORPORA[name], **extra
    )


def scores(kb: KnowledgeBase) -> dict[str, Any]:
    """The dev-set metrics over all scored questions."""
    return dict(kb.evaluate(DEV).as_dict()["overall"])


def refit(work: Path, name: str) -> tuple[int, float]:
    """Drop the stored adapter and index again (which fits one); (chunks, seconds)."""
    kb = KnowledgeBase.open(settings(work, name))
    kb.store.keep_adapters([])
    started = time.perf_counter()
    report = kb.index()
    return report.chunks, time.perf_counter() - started


def measure(work: Path, seeds: int) -> dict[str, Any]:
    """Every corpus with and without its adapter, then the cited set's fit per seed."""
    adapter.MAX_CHUNKS = 10**9  # fit every corpus, to see where the adapter helps
    corpora = {}
    for name in CORPORA:
        chunks, seconds = refit(work, name)
        corpora[name] = {
            "chunks": chunks,
            "index_seconds": seconds,
            "adapter": scores(KnowledgeBase.open(settings(work, name))),
            "plain": scores(KnowledgeBase.open(settings(work, name, query_adapter=False))),
        }
        print(name, corpora[name], flush=True)
    fits = []
    for seed in range(seeds):
        adapter.SEED = seed
        refit(work, "cited set")
        fits.append(scores(KnowledgeBase.open(settings(work, "cited set"))))
        print("seed", seed, fits[-1], flush=True)
    adapter.SEED = 0
    refit(work, "cited set")  # leave the cited index as the default builds it
    return {"corpora": corpora, "fits": fits}


def row(label: str, overall: dict[str, Any]) -> str:
    """One Markdown table row of the metrics."""
    cells = " | ".join(f"{overall[m]:.4f}" if overall[m] is not None else "" for m in METRICS)
    return f"| {label} | {cells} |"


def table(result: dict[str, Any], command: str) -> str:
    """The docs section for `result`."""
    header = "| hit@1 | hit@5 | MRR@10 | evidence@5 | abstain | false abstain |"
    lines = [
        f"## {SECTION}",
        "",
        f"`{command}`: the dev questions scored with and without the query adapter, in one "
        "process, on four indexes of `../shared/corpus` (the size limit lifted so every one "
        "gets an adapter; `index s` is the `bekb index` that fitted it, from cached vectors). "
        "`core` questions only, except on the workspace, which scores the `full` ones too.",
        "",
        f"| corpus | chunks | index s | adapter | {header[2:]}",
        "| --- | ---: | ---: | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in result["corpora"].items():
        for mode in ("adapter", "plain"):
            lead = f"{name} | {r['chunks']} | {r['index_seconds']:.1f}"
            lines.append(row(f"{lead} | {'on' if mode == 'adapter' else 'off'}", r[mode]))
    lines += [
        "",
        f"The cited set with the adapter fitted from {len(result['fits'])} seeds (seed 0 is "
        "the default):",
        "",
        f"| seed {header}",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for seed, overall in enumerate(result["fits"]):
        lines.append(row(str(seed), overall))
    means = {m: statistics.mean(f[m] for f in result["fits"]) for m in METRICS}
    lines.append(row("mean", means))
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure, print, and write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the indexes")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args()
    command = f".venv/bin/python scripts/bench_adapter.py --work {args.work} --seeds {args.seeds}"
    body = table(measure(args.work, args.seeds), command)
    print(body)
    write_sections(args.docs, {SECTION: body})
    print(f"wrote the {SECTION!r} section of {args.docs}")


if __name__ == "__main__":
    main()
