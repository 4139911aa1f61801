"""Benchmark serving: `search` throughput and latency, library and MCP, embedded and server mode.

Usage: .venv/bin/python scripts/bench_serve.py [--queries 200] [--docs docs/benchmarks.md]

Indexes the cited set of ../shared/corpus (read only) with the real default model into a
temporary index, once per store mode: embedded (PersistentClient under the index dir) and a
`chroma run` server on loopback (its data in the temp dir too; the server index is built from
the embedded run's embedding cache, so it costs no model calls). Then, for each mode, runs the
dev-set questions (cycled to --queries) through `KnowledgeBase.search` in this process, and
through `bekb mcp` over stdio driven by the official MCP SDK client (one request in flight, then
--in-flight concurrent requests on one session). Prints a table and writes the "Serving"
section of docs/benchmarks.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from benchlib import AGENT, DEV, DOCS, REPO, SHARED_CORPUS, clean_env, percentile, write_sections

from bekb import KnowledgeBase, Settings

SECTION = "Serving"
WARMUP = 5
SESSION_TIMEOUT = 600.0

sys.path.insert(0, str(REPO / "tests"))
from chroma_server import ChromaServer  # noqa: E402  (the tests' `chroma run` helper)


@dataclass(frozen=True)
class Run:
    """One measured series: per-request latencies and the wall time of the whole series."""

    surface: str
    mode: str
    in_flight: int
    latencies: tuple[float, ...]
    wall: float
    hits: tuple[tuple[str, ...], ...]  # hit paths per query, to compare the modes

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)


def questions(n: int) -> list[str]:
    """The dev-set questions, in file order, cycled to `n`."""
    lines = DEV.read_text(encoding="utf-8").splitlines()
    pool = [json.loads(line)["question"] for line in lines if line.strip()]
    return [pool[i % len(pool)] for i in range(n)]


def bench_library(settings: Settings, mode: str, queries: Sequence[str]) -> Run:
    """`kb.search` in this process, one call after another (model loaded by the warm-up)."""
    kb = KnowledgeBase.open(settings)
    for query in queries[:WARMUP]:
        kb.search(query)
    latencies, hits = [], []
    started = time.perf_counter()
    for query in queries:
        t0 = time.perf_counter()
        found = kb.search(query)
        latencies.append(time.perf_counter() - t0)
        hits.append(tuple(h.path for h in found))
    wall = time.perf_counter() - started
    return Run("library", mode, 1, tuple(latencies), wall, tuple(hits))


def bench_mcp(settings: Settings, mode: str, queries: Sequence[str], in_flight: int) -> list[Run]:
    """`bekb mcp` over stdio: sequential requests, then `in_flight` at a time, one session."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    command, *args = bekb_args(settings)
    params = StdioServerParameters(command=command, args=[*args, "mcp"], env=clean_env())

    async def search(session: ClientSession, query: str) -> tuple[float, tuple[str, ...]]:
        t0 = time.perf_counter()
        result: Any = await session.call_tool("search", {"query": query})
        elapsed = time.perf_counter() - t0
        if result.is_error or not result.structured_content["hits"]:
            raise SystemExit(f"MCP search failed for {query!r}: {result.content}")
        return elapsed, tuple(h["path"] for h in result.structured_content["hits"])

    async def series(session: ClientSession, width: int) -> Run:
        latencies: list[float] = [0.0] * len(queries)
        hits: list[tuple[str, ...]] = [()] * len(queries)
        limiter = anyio.Semaphore(width)

        async def one(i: int) -> None:
            async with limiter:
                latencies[i], hits[i] = await search(session, queries[i])

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for i in range(len(queries)):
                group.start_soon(one, i)
        wall = time.perf_counter() - started
        return Run("mcp", mode, width, tuple(latencies), wall, tuple(hits))

    async def main() -> list[Run]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for query in queries[:WARMUP]:
                await search(session, query)
            return [await series(session, 1), await series(session, in_flight)]

    return run_bounded(main)


def run_bounded(main: Callable[[], Awaitable[list[Run]]]) -> list[Run]:
    async def bounded() -> list[Run]:
        with anyio.fail_after(SESSION_TIMEOUT):
            return await main()

    return anyio.run(bounded)


def build(settings: Settings, label: str) -> tuple[int, float]:
    """`bekb index --json` in a child process, so this one never loads torch (queries use ONNX)."""
    done = subprocess.run(
        [*bekb_args(settings), "index", "--json"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{label}: bekb index failed: {done.stderr.strip()}")
    report = json.loads(done.stdout)
    print(
        f"{label}: {report['chunks']} chunks, {report['embedded']} embedded, "
        f"{report['cached']} from cache, {report['seconds']:.1f}s",
        flush=True,
    )
    return int(report["chunks"]), float(report["seconds"])


def bekb_args(settings: Settings) -> list[str]:
    """`python -m bekb` with the settings' root, index dir and Chroma URL."""
    args = [sys.executable, "-m", "bekb", "--root", str(settings.root)]
    args += ["--index-dir", str(settings.index_dir)]
    if settings.chroma_url:
        args += ["--chroma-url", settings.chroma_url]
    return args


def table(runs: Sequence[Run]) -> list[str]:
    rows = [
        "| surface | store | in flight | requests/s | p50 ms | p95 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        rows.append(
            f"| {run.surface} | {run.mode} | {run.in_flight} | {run.rps:.1f} | "
            f"{run.percentile(0.5) * 1000:.1f} | {run.percentile(0.95) * 1000:.1f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args()
    if not (SHARED_CORPUS / AGENT).exists():
        raise SystemExit(f"{SHARED_CORPUS / AGENT} not found")
    queries = questions(args.queries)

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bekb-bench-serve-") as tmp:
        embedded = Settings.load(root=SHARED_CORPUS, index_dir=Path(tmp) / "embedded")
        chunks, embedded_build = build(embedded, "embedded index")
        with ChromaServer(Path(tmp) / "chroma-server") as server:
            served = embedded.model_copy(
                update={"index_dir": Path(tmp) / "server-cache", "chroma_url": server.url}
            )
            # Same vectors without recomputing them: the embedding cache and ONNX export.
            served.index_dir.mkdir()
            shutil.copy2(embedded.index_dir / "embeddings.sqlite", served.index_dir)
            if (embedded.index_dir / "onnx").exists():
                shutil.copytree(embedded.index_dir / "onnx", served.index_dir / "onnx")
            _, server_build = build(served, f"server index ({server.url})")
            for settings, mode in ((embedded, "embedded"), (served, "server")):
                print(f"{mode}: library, {len(queries)} searches", flush=True)
                runs.append(bench_library(settings, mode, queries))
                print(f"{mode}: MCP over stdio, {len(queries)} searches x2", flush=True)
                runs.extend(bench_mcp(settings, mode, queries, args.in_flight))

    rows = table(runs)
    print("\n".join(rows))
    by = {(r.surface, r.mode, r.in_flight): r.hits for r in runs}
    pairs = zip(by[("library", "embedded", 1)], by[("library", "server", 1)], strict=True)
    same = sum(a == b for a, b in pairs)
    print(f"server hits identical to embedded (library): {same}/{len(queries)}")

    rate = {(r.surface, r.mode, r.in_flight): r.rps for r in runs}
    ratio = rate[("mcp", "embedded", args.in_flight)] / rate[("mcp", "embedded", 1)]
    print(f"embedded MCP, {args.in_flight} in flight against 1: {ratio:.2f}x")
    serial = next(r for r in runs if (r.surface, r.mode, r.in_flight) == ("mcp", "embedded", 1))
    serial_ms = serial.percentile(0.5) * 1000
    cpus = os.cpu_count()
    load = os.getloadavg()[0]
    command = " ".join([".venv/bin/python scripts/bench_serve.py", *sys.argv[1:]])
    table_text = "\n".join(rows)
    section = f"""## {SECTION}

`{command}`: `search` (default k) on the cited set of `../shared/corpus`
({chunks} chunks, real model, queries embedded through ONNX), {len(queries)} dev-set questions
cycled, after {WARMUP} warm-up calls, on {cpus} CPUs shared with other work while measured
(load average {load:.1f} at the end). `library` is `KnowledgeBase.search` in the benchmark
process; `mcp` is `bekb mcp` over stdio driven by the official MCP SDK client, one session,
with 1 or {args.in_flight} requests in flight. `embedded` is the PersistentClient under the
index dir; `server` is a `chroma run` on 127.0.0.1 started in the same run. Index builds:
embedded {embedded_build:.1f} s; server {server_build:.1f} s (from the embedding cache).

{table_text}

Server-mode hits equal embedded-mode hits for {same}/{len(queries)} queries (the two HNSW
graphs are built separately and are approximate: for the same query vector their 40 dense
candidates can differ, which reorders a hit or two). Every search runs
the staleness check (a stat of each indexed file) and reads the active pointer, the file
registry and the chunks from Chroma, so server mode pays a few loopback round trips per
query. The MCP server runs its tools in parallel, each on a worker thread (the knowledge base
makes its parts once, under a lock, and shares them; queries are embedded on one ONNX thread
each, so parallel searches each get a core): with {args.in_flight} in flight, embedded
throughput is {ratio:.2f}x the one-at-a-time figure on {cpus} CPUs (p95 in the table). Before
(one tool at a time, ONNX on every core; an earlier, slower machine): 36.4 against 23.1
requests/s, 1.58x. The issue's 2x is out of reach on 2 CPUs: one request at a time already
keeps one CPU busy (a request's latency, {serial_ms:.1f} ms at p50 here, is CPU time of the
server or the client, with no waiting), so 2 CPUs bound the gain at 2x less what the threads
share (the GIL, Chroma's and the tokenizers' locks) and the client's own share of the CPUs.
Worker processes instead of threads were measured too (a prototype, the same stdio client,
the earlier machine): 1.49-1.57x against 1.62-1.73x for threads, the pickling and pipes
costing more than the GIL.
"""
    write_sections(args.docs, {SECTION: section})
    print(f"wrote the {SECTION!r} section of {args.docs}")


if __name__ == "__main__":
    main()
