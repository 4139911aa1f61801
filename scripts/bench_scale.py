"""bekb at 1x, 3x and 10x the workspace: build, memory, disk, search latency, one edit.

Usage: .venv/bin/python scripts/bench_scale.py [--sizes 1,3,10] [--backend onnx-int8]
       [--results FILE.json] [--report]

Each size is a corpus made by scripts/scaled_corpus.py (N rewritten copies of the workspace:
distinct text, nothing any build can take from a cache), in a temporary folder. Per size, one
after another, each a fresh process (wall time and peak RSS from wait4):
  - a cold `bekb --scope workspace index` into a new index (the model's export already made
    on this machine, as for every build after the first);
  - warm `kb.search` latency: the dev.jsonl and dev2.jsonl questions as queries (only their
    text, as load), after a few warm-up searches; p50 and p95;
  - one SKILL.md edited, then `kb.index()` (work after imports);
  - the index folder's size on disk.
At the largest size the same corpus is built on a `chroma run` server on loopback too (its
embeddings from the embedded build's cache, so that build measures the store), with the same
searches and edit. Prints the table, writes the "Scale" section of the docs and the plot
docs/scale.svg (build time and search latency against corpus size).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    DEV,
    DEV2,
    DOCS,
    REPO,
    clean_env,
    last_json,
    load1,
    measured,
    percentile,
    write_sections,
)
from scaled_corpus import generate

sys.path.insert(0, str(REPO / "tests"))
from chroma_server import ChromaServer  # the tests' `chroma run` helper

BEKB = Path(sys.executable).with_name("bekb")
SECTION = "Scale"
PLOT = REPO / "docs" / "scale.svg"
WARMUP = 5

SEARCH_CHILD = """
import json, sys, time
from bekb import KnowledgeBase
kb = KnowledgeBase.open(**json.loads(sys.argv[1]))
queries = json.loads(sys.argv[2])
for q in queries[: int(sys.argv[3])]:
    kb.search(q)
latencies = []
for q in queries:
    t = time.perf_counter()
    kb.search(q)
    latencies.append(time.perf_counter() - t)
print(json.dumps(latencies))
"""

EDIT_CHILD = """
import json, sys
from bekb import KnowledgeBase
report = KnowledgeBase.open(**json.loads(sys.argv[1])).index()
print(json.dumps({"work": report.seconds, "embedded": report.embedded}))
"""


def settings_env(cache: Path, url: str | None, backend: str) -> dict[str, str]:
    env = clean_env(
        BEKB_CACHE_DIR=str(cache),
        BEKB_SCOPE="workspace",
        BEKB_AGENT_FILES="",
        BEKB_INDEX_BACKEND=backend,
    )
    if url:
        env["BEKB_CHROMA_URL"] = url
    return env


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def questions() -> list[str]:
    """The text of the dev and dev2 questions: a realistic query load (nothing is scored)."""
    lines = [line for path in (DEV, DEV2) for line in path.read_text().splitlines() if line]
    return [json.loads(line)["question"] for line in lines]


def measure_size(
    root: Path, index_dir: Path, cache: Path, url: str | None, backend: str
) -> dict[str, Any]:
    """Build, search and edit one corpus into one index (embedded, or the server at `url`)."""
    env = settings_env(cache, url, backend)
    build = measured(
        [str(BEKB), "--root", str(root), "--index-dir", str(index_dir), "index", "--json"], env=env
    )
    report = json.loads(build["stdout"])
    kb_args = json.dumps({"root": str(root), "index_dir": str(index_dir)})
    searched = measured(
        [sys.executable, "-c", SEARCH_CHILD, kb_args, json.dumps(questions()), str(WARMUP)], env=env
    )
    latencies = last_json(searched["stdout"])
    skill = sorted(root.rglob("SKILL.md"))[0]
    with skill.open("a", encoding="utf-8") as edit:
        edit.write(f"\n## Benchmark edit {time.time_ns()}\n\nThe ledger rotates nightly.\n")
    edited = measured([sys.executable, "-c", EDIT_CHILD, kb_args], env=env)
    return {
        "files": report["files"]["added"],
        "chunks": report["chunks"],
        "build_s": build["wall"],
        "build_rss_mb": build["rss_mb"],
        "stages": report["timings"],
        "search_p50_ms": 1000 * percentile(latencies, 0.5),
        "search_p95_ms": 1000 * percentile(latencies, 0.95),
        "search_rss_mb": searched["rss_mb"],
        "edit": last_json(edited["stdout"]),
        "index_mb": folder_bytes(index_dir) / 1e6,
    }


def measure(
    work: Path, sizes: list[int], backend: str, save: Path, files: int | None
) -> dict[str, Any]:
    """Every size in turn, then the largest on a server; results saved after each step."""
    out: dict[str, Any] = {"load_start": load1(), "backend": backend, "sizes": {}}
    cache = work / "machine-cache"
    largest = max(sizes)
    corpus = work / "generated"
    generate(corpus, largest, limit=files)
    warm = work / "warm-root"  # one skill built first: makes the machine's export, unmeasured
    skill = next((corpus / "copy-0").rglob("SKILL.md"))
    (warm / "skills/one").mkdir(parents=True)
    shutil.copy2(skill, warm / "skills/one/SKILL.md")
    measured(
        [str(BEKB), "--root", str(warm), "--index-dir", str(work / "ix-warm"), "index"],
        env=settings_env(cache, None, backend),
    )
    for size in sizes:
        root = work / f"root-{size}"
        for copy in range(size):
            shutil.copytree(corpus / f"copy-{copy}", root / f"copy-{copy}")
        out["sizes"][str(size)] = measure_size(root, work / f"ix-{size}", cache, None, backend)
        out["sizes"][str(size)]["load"] = load1()
        save.write_text(json.dumps(out, indent=2))
    with ChromaServer(work / "chroma-data") as server:
        server_ix = work / "ix-server"
        server_ix.mkdir()
        shutil.copy2(work / f"ix-{largest}" / "embeddings.sqlite", server_ix)
        root = work / f"root-{largest}"
        measured_server = measure_size(root, server_ix, cache, server.url, backend)
        measured_server["server_mb"] = folder_bytes(work / "chroma-data") / 1e6
        out["server"] = measured_server
    out["load_end"] = load1()
    save.write_text(json.dumps(out, indent=2))
    return out


def stages(timings: dict[str, float]) -> str:
    parts = sorted(timings.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {seconds:.0f}" for name, seconds in parts if seconds >= 1)


def table(r: dict[str, Any], command: str) -> str:
    rows = [
        "| corpus | store | files | chunks | build | peak RSS (build) | index on disk | search "
        "p50 / p95 | one edit (work) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    series = [(f"{size}x", "embedded", m) for size, m in r["sizes"].items()]
    series.append((f"{max(r['sizes'], key=int)}x", "server", r["server"]))
    for label, store, m in series:
        disk = f"{m['index_mb']:.0f} MB" + (
            f" + server {m['server_mb']:.0f} MB" if "server_mb" in m else ""
        )
        rows.append(
            f"| {label} | {store} | {m['files']} | {m['chunks']} | {m['build_s']:.0f} s "
            f"({stages(m['stages'])}) | {m['build_rss_mb']:.0f} MB | {disk} | "
            f"{m['search_p50_ms']:.1f} / {m['search_p95_ms']:.1f} ms | "
            f"{m['edit']['work']:.2f} s ({m['edit']['embedded']} embedded) |"
        )
    return (
        f"`{command}`: N rewritten copies of the workspace (`scripts/scaled_corpus.py`), 2 CPUs, "
        f'`--scope workspace`, `index_backend = "{r["backend"]}"`, 1-minute load '
        f"{r['load_start']:.1f} at the start and {r['load_end']:.1f} at the end. Build stages "
        f"in seconds; search: warm `kb.search` over the {len(questions())} dev and dev2 "
        "questions, staleness check included; the server build took its vectors from the "
        "embedded build's cache.\n\n"
        + "\n".join(rows)
        + "\n\n![build time and search latency against corpus size](scale.svg)\n"
    )


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(r["sizes"], key=int)
    chunks = [r["sizes"][s]["chunks"] for s in sizes]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(chunks, [r["sizes"][s]["build_s"] / 60 for s in sizes], "o-")
    left.set(xlabel="chunks", ylabel="cold build (min)", title="Index build")
    for key, name in (("search_p50_ms", "p50"), ("search_p95_ms", "p95")):
        right.plot(chunks, [r["sizes"][s][key] for s in sizes], "o-", label=name)
    right.set(xlabel="chunks", ylabel="warm search (ms)", title="Search latency")
    right.legend()
    for axis in (left, right):
        axis.set_ylim(bottom=0)
        axis.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:.0f}k")
        for s, x in zip(sizes, chunks, strict=True):
            axis.annotate(f"{s}x", (x, 0), textcoords="offset points", xytext=(0, 4))
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})  # no timestamp: the file changes with the data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,3,10", help="copies of the workspace, e.g. 1,3,10")
    parser.add_argument("--backend", default="onnx", help="index_backend of every build")
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument(
        "--results", type=Path, default=Path("bench-scale.json"), help="raw results, kept"
    )
    parser.add_argument("--report", action="store_true", help="only re-render --results")
    parser.add_argument(
        "--files", type=int, help="only this many files per copy: a quick check of the script"
    )
    args = parser.parse_args()
    command = " ".join([".venv/bin/python scripts/bench_scale.py", *sys.argv[1:]])
    if args.report:
        results = json.loads(args.results.read_text())
    else:
        sizes = sorted(int(s) for s in args.sizes.split(","))
        with tempfile.TemporaryDirectory(prefix="bekb-bench-scale-") as tmp:
            results = measure(Path(tmp), sizes, args.backend, args.results, args.files)
        results["command"] = command
        args.results.write_text(json.dumps(results, indent=2))
    text = table(results, results.get("command", command))
    print(text)
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    plot(results, args.docs.parent / PLOT.name)
    write_sections(args.docs, {SECTION: f"## {SECTION}\n\n{text}"})


if __name__ == "__main__":
    main()
