"""A passage found word for word in several files is one hit, cited from the specialist's own
source when one of the files is; the evaluation counts the copies at that hit's rank."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_support import invoke, model_app
from conftest import TINY_AGENT, HashingEmbedder

from bekb import Copy, Hit, KnowledgeBase, Settings
from bekb.contracts import search_json
from bekb.evaluation import Question, rank_of
from bekb.retrieval.retriever import fold_copies

CACHING = "alpha/skills/caching/SKILL.md"
# A plugin folder whose copy wins the tie with the cited file (asserted in the test).
COPY = "omega/skills/caching/SKILL.md"
QUERY = "stampede protection lock coalescing"


def hit(path: str, text: str, score: float) -> Hit:
    return Hit(path=path, heading="H", start_line=1, end_line=3, text=text, score=score)


def test_a_later_hit_with_the_same_text_becomes_a_copy_of_the_first():
    hits = fold_copies(
        [
            hit("a.md", "one two\nthree", 0.9),
            hit("b.md", "other", 0.8),
            hit("c.md", "one  two three\n", 0.7),
        ]
    )
    assert [(h.path, h.score) for h in hits] == [("a.md", 0.9), ("b.md", 0.8)]
    assert hits[0].copies == (Copy("c.md", "H", 1, 3),)
    assert hits[0].copies[0].label == "c.md#H (lines 1-3)"
    assert hits[1].copies == ()


def test_a_preferred_copy_is_cited_in_place_of_the_first_at_the_first_ones_rank():
    hits = fold_copies(
        [
            hit("plugin/a.md", "same", 0.9),
            hit("b.md", "other", 0.8),
            hit("cited/a.md", "same", 0.7),
        ],
        preferred={"cited/a.md", "b.md"},
    )
    assert [(h.path, h.score) for h in hits] == [("cited/a.md", 0.9), ("b.md", 0.8)]
    assert [c.path for c in hits[0].copies] == ["plugin/a.md"]


def test_copies_are_listed_in_ranking_order_when_a_preferred_one_takes_the_place():
    hits = fold_copies(
        [hit("p/a.md", "same", 0.9), hit("q/a.md", "same", 0.8), hit("cited/a.md", "same", 0.7)],
        preferred={"cited/a.md"},
    )
    assert hits[0].path == "cited/a.md"
    assert [c.path for c in hits[0].copies] == ["p/a.md", "q/a.md"]


def test_copies_of_a_preferred_hit_never_displace_it():
    hits = fold_copies(
        [
            hit("cited/a.md", "same", 0.9),
            hit("plugin/a.md", "same", 0.8),
            hit("x/a.md", "same", 0.7),
        ],
        preferred={"cited/a.md"},
    )
    assert hits[0].path == "cited/a.md"
    assert [c.path for c in hits[0].copies] == ["plugin/a.md", "x/a.md"]


@pytest.fixture
def copied_workspace(tiny_root: Path, tmp_path: Path) -> Settings:
    """The tiny workspace with the cited caching skill copied into another plugin."""
    copy = tiny_root / COPY
    copy.parent.mkdir(parents=True)
    shutil.copy(tiny_root / CACHING, copy)
    return Settings.load(
        root=tiny_root, index_dir=tmp_path / "index", agent_files=(TINY_AGENT,), scope="workspace"
    )


def test_a_copied_skill_takes_one_place_cited_from_the_specialists_own_file(
    copied_workspace: Settings, hashing_embedder: HashingEmbedder
):
    kb = KnowledgeBase.open(copied_workspace, embedder=hashing_embedder)
    kb.index()
    # The two copies score the same; unfolded, the plugin's copy happens to rank first.
    unfolded = kb._retrieval().search(QUERY, 10, preferred=()).hits
    assert unfolded[0].path == COPY

    hits = kb.search(QUERY, k=10)

    assert hits[0].path == CACHING
    assert "## Stampede protection" in hits[0].text
    assert [c.path for c in hits[0].copies] == [COPY]
    texts = [" ".join(h.text.split()) for h in hits]
    assert len(texts) == len(set(texts))
    shown = search_json(QUERY, hits)["hits"][0]["copies"]
    assert shown == [
        {
            "path": COPY,
            "heading": hits[0].heading,
            "start_line": hits[0].start_line,
            "end_line": hits[0].end_line,
            "label": hits[0].copies[0].label,
            "location": f"{COPY}:{hits[0].start_line}-{hits[0].end_line}",
        }
    ]


def test_the_evaluation_counts_a_relevant_copy_at_its_hits_rank():
    question = Question("q", "?", relevant=("plugin/a.md",), evidence=(), kind="k", corpus="c")
    paths = ("b.md", "cited/a.md")
    assert rank_of(question, paths) is None
    assert rank_of(question, paths, copies=((), ("plugin/a.md",))) == 2


def test_the_cli_shows_where_else_a_passage_appears(copied_workspace: Settings, real_embedder):
    env = {"BEKB_AGENT_FILES": TINY_AGENT, "BEKB_SCOPE": "workspace"}
    app = model_app(real_embedder)
    root = ["--root", copied_workspace.root, "--index-dir", copied_workspace.index_dir]

    def run(*args: str) -> str:
        done = invoke(app, [*root, *args], env=env)
        assert done.code == 0, done.err
        return done.out

    run("index", "--json")
    shown = run("search", QUERY, "-k", "3").splitlines()
    first = next(i for i, line in enumerate(shown) if line.startswith(" 1. "))
    assert shown[first].startswith(f" 1. {CACHING}:")
    assert shown[first + 1].startswith(f"    same text in: {COPY}:")
