"""The `--json` shapes of DESIGN.md "Contracts", shared by the CLI and the MCP server.

Keys may be added; the contract keys are never renamed or dropped (tests assert them).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bekb.domain import (
    Agent,
    AgentList,
    Answer,
    CorpusStatus,
    Excerpt,
    Hit,
    IndexReport,
    IndexStatus,
    InitReport,
    Source,
    SyncReport,
)


def hit_json(hit: Hit) -> dict[str, Any]:
    """A hit as in `bekb search --json`."""
    return {
        "path": hit.path,
        "heading": hit.heading,
        "start_line": hit.start_line,
        "end_line": hit.end_line,
        "score": hit.score,
        "text": hit.text,
        "label": hit.label,
        "location": hit.location,
        "kind": hit.kind,
        "stale": hit.stale,
        "explain": asdict(hit.explain),
        "copies": [{**asdict(c), "label": c.label, "location": c.location} for c in hit.copies],
        "matched_lines": list(hit.matched_lines),
    }


def search_json(query: str, hits: list[Hit]) -> dict[str, Any]:
    """`bekb search --json`."""
    return {"query": query, "hits": [hit_json(h) for h in hits]}


def answer_json(answer: Answer) -> dict[str, Any]:
    """`bekb ask --json`."""
    return {
        "question": answer.question,
        "mode": answer.mode,
        "answer": answer.text,
        "persona": answer.persona,
        "notice": answer.notice,
        "persona_notice": answer.persona_notice,
        "uncovered": list(answer.uncovered),
        "citations": [
            {
                "n": c.n,
                "path": c.path,
                "heading": c.heading,
                "start_line": c.start_line,
                "end_line": c.end_line,
                "label": c.label,
                "location": c.location,
                "quote": c.quote,
                "stale": c.stale,
            }
            for c in answer.citations
        ],
        "hits": [hit_json(h) for h in answer.hits],
        "rewrites": list(answer.rewrites),
        "searches": list(answer.searches),
        # Tokens over every API call the answer took (expansion, each search round); null
        # when none was made.
        "usage": asdict(answer.usage) if answer.usage is not None else None,
    }


def index_json(report: IndexReport) -> dict[str, Any]:
    """`bekb index --json`."""
    return {
        "files": {
            "added": report.added,
            "changed": report.changed,
            "removed": report.removed,
            "unchanged": report.unchanged,
        },
        "chunks": report.chunks,
        "embedded": report.embedded,
        "cached": report.cached,
        "seconds": report.seconds,
        "full_rebuild": report.full_rebuild,
        "rebuild_reason": report.rebuild_reason,
        "skipped": [asdict(s) for s in report.skipped],
        "unresolved": list(report.unresolved),
        "refused": [asdict(s) for s in report.refused],
        "timings": dict(report.timings),
    }


def corpus_json(status: CorpusStatus) -> dict[str, Any]:
    """`bekb corpus status --json`."""
    return {
        "root": status.root,
        "files": [{"path": f.path, "state": f.state, "sha256": f.sha256} for f in status.files],
        "unresolved": list(status.unresolved),
        "refused": [asdict(r) for r in status.refused],
        "unresolved_citations": [asdict(c) for c in status.unresolved_citations],
        "counts": corpus_counts(status),
        "unmatched_globs": list(status.unmatched_globs),
    }


def corpus_counts(status: CorpusStatus) -> dict[str, int]:
    """How many files are in each state, and how many citations resolve to no usable file,
    by problem (`bekb corpus status` ends with them)."""
    counts = {"files": len(status.files), "indexed": 0, "new": 0, "changed": 0, "deleted": 0}
    for f in status.files:
        counts[f.state] += 1
    counts["unresolved_citations"] = len(status.unresolved_citations)
    problems = {"missing": 0, "outside_root": 0, "not_text": 0}
    for cited in status.unresolved_citations:
        problems[cited.problem] += 1
    return {**counts, **problems, "refused": len(status.refused)}


def init_json(report: InitReport) -> dict[str, Any]:
    """`bekb init --json`."""
    return {
        "folder": str(report.folder),
        "config": str(report.config),
        "layouts": [asdict(layout) for layout in report.layouts],
        "agent_files": list(report.agent_files),
        "include": list(report.include),
        "scope": report.scope,
        "index_dir": report.index_dir,
        "files": report.files,
        "unresolved_citations": [asdict(c) for c in report.unresolved_citations],
        "next": list(report.next_commands),
    }


def status_json(status: IndexStatus) -> dict[str, Any]:
    """`bekb status --json`."""
    data = asdict(status)
    data["stale"] = [{"path": f.path, "state": f.state} for f in status.stale]
    return data


def sync_json(report: SyncReport) -> dict[str, Any]:
    """`bekb corpus sync --json`."""
    return {
        "root": str(report.root),
        "ok": report.ok,
        "repos": [asdict(r) for r in report.repos],
        "failures": [asdict(f) for f in report.failures],
        "unpinned": list(report.unpinned),
        "repin": report.repin,
    }


def excerpt_json(excerpt: Excerpt) -> dict[str, Any]:
    """`bekb show --json`."""
    return {**asdict(excerpt), "location": excerpt.location}


def personas_json(root: str, agents: AgentList) -> dict[str, Any]:
    """`bekb personas --json`: the index's agent files (`agents`), then the others."""

    def one(agent: Agent) -> dict[str, Any]:
        return {"name": agent.name, "path": agent.path, "description": agent.description}

    return {
        "root": root,
        "agents": [
            {**one(a), "cited_files": a.cited_files, "own_files": a.own_files}
            for a in agents.configured
        ],
        "others": [one(a) for a in agents.others],
    }


def sources_json(sources: list[Source]) -> dict[str, Any]:
    """The indexed files with titles and descriptions (MCP `list_sources`)."""
    return {"sources": [asdict(s) for s in sources]}
