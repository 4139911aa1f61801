"""What every benchmark script shares: where the corpus is, a measured child process, a copy
of the cited set, percentiles, and writing results into docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared"))
SHARED_CORPUS = SHARED / "corpus"
DEV = SHARED / "eval" / "dev.jsonl"
DEV2 = SHARED / "eval" / "dev2.jsonl"
REWRITES = SHARED / "eval" / "dev-rewrites.jsonl"
AGENT = "specialists/backend-specialist.md"
DOCS = REPO / "docs" / "benchmarks.md"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's bekb/Anthropic settings (no key: no LLM)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEKB_", "ANTHROPIC_"))}
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env


def measured(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """Run `cmd`: its wall seconds, peak RSS in MB (the process alone, from wait4) and stdout.

    Raises SystemExit with the tail of the output when the command fails.
    """
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=env or clean_env(), stdout=out, stdin=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:6])}... exited {code}:\n{text[-2000:]}")
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "stdout": text}


def last_json(text: str) -> Any:
    """The JSON object on the last line of a child's output."""
    return json.loads(text.strip().splitlines()[-1])


def copy_cited_set(root: Path) -> Path:
    """A writable copy of what the specialist cites (and the agent file) under `root`."""
    from bekb.corpus.selection import select_files

    for rel in [AGENT, *select_files(SHARED_CORPUS, agent_files=(AGENT,)).files]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SHARED_CORPUS / rel, root / rel)
    return root


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0-1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load1() -> float:
    """The 1-minute load average (a benchmark says how busy the machine was)."""
    return os.getloadavg()[0]


def write_sections(path: Path, sections: dict[str, str]) -> None:
    """Replace (or append) each `## heading` section of `path`, keeping the rest of the file.

    Each body starts with its own `## heading` line.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    for heading, body in sections.items():
        lines = text.splitlines()
        marker = f"## {heading}"
        if marker in lines:
            start = lines.index(marker)
            end = next(
                (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
            )
            lines[start:end] = [*body.rstrip("\n").splitlines(), ""]
            text = "\n".join(lines).rstrip("\n") + "\n"
        else:
            text = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
