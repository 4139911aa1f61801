"""Run library calls in a fresh process (hashing model) and print what each gave, as JSON.

Usage: python kb_probe.py ROOT INDEX_DIR AGENT_FILE OP...
OP is `search:QUERY`, `ask:QUESTION`, `index`, `index-full` or `status`. Each prints one JSON
line: {"op", "ok", "paths" | "report", "error", "message", "bekb"}. A fresh process matters:
Chroma keeps an open store per path inside a process, so damage done to files on disk is only
seen by a process that opens them anew.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import HashingEmbedder

from bekb import BekbError, KnowledgeBase, Settings


def probe(kb: KnowledgeBase, op: str) -> dict[str, Any]:
    name, _, argument = op.partition(":")
    if name == "search":
        hits = kb.search(argument, k=5)
        return {"paths": [h.path for h in hits], "texts": [h.text for h in hits]}
    if name == "ask":
        answer = kb.ask(argument, use_llm=False)
        return {"mode": answer.mode, "paths": [h.path for h in answer.hits]}
    if name in ("index", "index-full"):
        report = kb.index(full=name == "index-full")
        return {"report": [report.added, report.changed, report.removed, report.embedded]}
    if name == "status":
        status = kb.status()
        return {"report": [status.files, status.chunks], "problem": status.store_problem}
    raise SystemExit(f"unknown op {op!r}")


def main() -> None:
    root, index_dir, agent, *ops = sys.argv[1:]
    settings = Settings.load(root=Path(root), index_dir=Path(index_dir), agent_files=(agent,))
    for op in ops:
        result: dict[str, Any] = {"op": op}
        try:
            # A fresh KnowledgeBase per op, as a fresh command would have.
            result.update(probe(KnowledgeBase.open(settings, embedder=HashingEmbedder()), op))
            result["ok"] = True
        except BaseException as exc:  # report everything, tracebacks included, as data
            result.update(
                ok=False,
                error=type(exc).__name__,
                message=str(exc),
                bekb=isinstance(exc, BekbError),
            )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
