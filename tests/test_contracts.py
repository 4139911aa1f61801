"""The `--json` shapes as whole values, from hand-made results."""

from __future__ import annotations

from pathlib import Path

from bekb import contracts
from bekb.domain import (
    Answer,
    Citation,
    Copy,
    CorpusStatus,
    Excerpt,
    FileStatus,
    Hit,
    HitExplain,
    IndexReport,
    RepoSyncReport,
    SkippedFile,
    Source,
    SyncFailure,
    SyncReport,
)

HIT = Hit(
    path="a/SKILL.md",
    heading="Sagas > Steps",
    start_line=3,
    end_line=9,
    text="Compensate.",
    score=0.75,
    kind="prose",
    chunk_ids=("c1",),
    explain=HitExplain(dense_rank=1, bm25_rank=2, dense_similarity=0.5, fused=0.75),
    copies=(Copy("b/SKILL.md", "Sagas > Steps", 3, 9),),
    matched_lines=(4, 7),
    matched_stems=("compens",),
)


def test_hit_json():
    assert contracts.hit_json(HIT) == {
        "path": "a/SKILL.md",
        "heading": "Sagas > Steps",
        "start_line": 3,
        "end_line": 9,
        "score": 0.75,
        "text": "Compensate.",
        "label": "a/SKILL.md#Sagas > Steps (lines 3-9)",
        "location": "a/SKILL.md:3-9",
        "kind": "prose",
        "stale": False,
        "explain": {
            "dense_rank": 1,
            "bm25_rank": 2,
            "dense_similarity": 0.5,
            "fused": 0.75,
            "rerank": None,
        },
        "copies": [
            {
                "path": "b/SKILL.md",
                "heading": "Sagas > Steps",
                "start_line": 3,
                "end_line": 9,
                "label": "b/SKILL.md#Sagas > Steps (lines 3-9)",
                "location": "b/SKILL.md:3-9",
            }
        ],
        "matched_lines": [4, 7],
    }


def test_answer_json():
    answer = Answer(
        question="q?",
        mode="llm",
        text="Do this [1].",
        citations=(Citation(1, "a/SKILL.md", "Sagas > Steps", 3, 5, quote="Compensate."),),
        hits=(HIT,),
        persona="backend-specialist",
        uncovered=("Kafka",),
    )
    data = contracts.answer_json(answer)
    assert {k: v for k, v in data.items() if k != "hits"} == {
        "question": "q?",
        "mode": "llm",
        "answer": "Do this [1].",
        "persona": "backend-specialist",
        "notice": "",
        "persona_notice": "",
        "uncovered": ["Kafka"],
        "citations": [
            {
                "n": 1,
                "path": "a/SKILL.md",
                "heading": "Sagas > Steps",
                "start_line": 3,
                "end_line": 5,
                "label": "a/SKILL.md#Sagas > Steps (lines 3-5)",
                "location": "a/SKILL.md:3-5",
                "quote": "Compensate.",
                "stale": False,
            }
        ],
        "rewrites": [],
        "searches": [],
        "usage": None,
    }
    assert data["hits"] == [contracts.hit_json(HIT)]


def test_excerpt_json():
    excerpt = Excerpt("a/SKILL.md", 2, 3, "two\nthree\n", 9)
    assert contracts.excerpt_json(excerpt) == {
        "path": "a/SKILL.md",
        "start_line": 2,
        "end_line": 3,
        "text": "two\nthree\n",
        "total_lines": 9,
        "location": "a/SKILL.md:2-3",
    }


def test_index_json():
    report = IndexReport(
        1,
        2,
        3,
        4,
        chunks=50,
        embedded=7,
        cached=8,
        seconds=1.5,
        full_rebuild=True,
        rebuild_reason="no index yet",
        skipped=(SkippedFile("x.md", "binary"),),
        unresolved=("y.md",),
        timings={"chunk": 0.5, "embed": 1.0},
    )
    assert contracts.index_json(report) == {
        "files": {"added": 1, "changed": 2, "removed": 3, "unchanged": 4},
        "chunks": 50,
        "embedded": 7,
        "cached": 8,
        "seconds": 1.5,
        "full_rebuild": True,
        "rebuild_reason": "no index yet",
        "skipped": [{"path": "x.md", "reason": "binary"}],
        "unresolved": ["y.md"],
        "refused": [],
        "timings": {"chunk": 0.5, "embed": 1.0},
    }


def test_corpus_json():
    status = CorpusStatus("/r", (FileStatus("a.md", "new", "ab"),), ("gone.md",))
    assert contracts.corpus_json(status) == {
        "root": "/r",
        "files": [{"path": "a.md", "state": "new", "sha256": "ab"}],
        "unresolved": ["gone.md"],
        "refused": [],
        "unresolved_citations": [],
        "counts": {
            "files": 1,
            "indexed": 0,
            "new": 1,
            "changed": 0,
            "deleted": 0,
            "unresolved_citations": 0,
            "missing": 0,
            "outside_root": 0,
            "not_text": 0,
            "refused": 0,
        },
        "unmatched_globs": [],
    }


def test_sync_and_sources_json():
    report = SyncReport(
        Path("/r"),
        (RepoSyncReport("agents", copied=2),),
        (SyncFailure("agents/x.md", "missing from mirror"),),
    )
    assert contracts.sync_json(report) == {
        "root": "/r",
        "ok": False,
        "repos": [{"name": "agents", "fetched": 0, "copied": 2, "skipped": 0, "failed": 0}],
        "failures": [{"path": "agents/x.md", "reason": "missing from mirror"}],
        "unpinned": [],
        "repin": "",
    }
    assert contracts.sources_json([Source("a.md", "A", "About a", 3)]) == {
        "sources": [{"path": "a.md", "title": "A", "description": "About a", "chunks": 3}]
    }
