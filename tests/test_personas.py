"""Several agents, one index: each configured agent file answers from its own files."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from cli_support import CliResult, hashing_app, invoke
from conftest import HashingEmbedder

from bekb import KnowledgeBase, Settings, UsageError
from bekb.corpus.selection import select_files
from bekb.domain import Agent, AgentList, Hit
from bekb.mcp.budget import Budget
from bekb.mcp.tools import Tools

PAYMENTS = "team/agents/payments.md"
SEARCH = "team/agents/search.md"
OPS = "team/agents/ops.md"  # under the root, not configured
LEDGER = "docs/ledger.md"
RANKING = "docs/ranking.md"
SHARED = "docs/shared-incidents.md"  # matched by an include glob: no agent cites it
REFUNDS = ("skills/refunds/SKILL.md", "skills/refunds/references/window.md")

WORKSPACE = {
    PAYMENTS: (
        "---\nname: payments\ndescription: The payments engineer.\n---\n\n"
        "You keep the money right. Read `docs/ledger.md` and `skills/refunds/SKILL.md`.\n"
    ),
    SEARCH: (
        "---\nname: search\ndescription: The search engineer.\n---\n\n"
        "You tune relevance; see [ranking](../../docs/ranking.md).\n"
    ),
    OPS: "---\nname: ops\ndescription: The on-call engineer.\n---\n\nYou run production.\n",
    LEDGER: (
        "# Ledger\n\n## Double-entry bookkeeping\n\nEvery payment posts two ledger entries, "
        "a debit and a credit, that sum to zero; reconcile the ledger nightly against the "
        "bank statement.\n"
    ),
    RANKING: (
        "# Ranking\n\n## Tuning relevance\n\nRank search results with a lexical scorer; tune "
        "its parameters on held-out queries and boost exact title matches.\n"
    ),
    SHARED: (
        "# Incidents\n\n## Paging\n\nPage the on-call engineer when the error budget burns "
        "faster than planned, then open an incident channel.\n"
    ),
    REFUNDS[0]: (
        "---\nname: refunds\ndescription: Refund rules.\n---\n\n# Refunds\n\n"
        "Refund a payment in full or in part; see references/window.md.\n"
    ),
    REFUNDS[1]: "# Refund window\n\nRefunds are allowed within thirty days of the charge.\n",
}
LEDGER_QUESTION = "how do I reconcile the ledger debit and credit entries"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return write(tmp_path / "root", WORKSPACE)


@pytest.fixture
def settings(workspace: Path, tmp_path: Path) -> Settings:
    return Settings.load(
        root=workspace,
        index_dir=tmp_path / "index",
        agent_files=(PAYMENTS, SEARCH),
        include=("docs/shared-*.md",),
        lock_timeout=5,
    )


@pytest.fixture
def kb(settings: Settings) -> KnowledgeBase:
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    kb.index()
    return kb


def paths(hits: Iterable[Hit]) -> set[str]:
    return {h.path for h in hits}


def cli(settings: Settings, *args: object) -> CliResult:
    """`bekb ARGS` on the index of `settings`, with the hashing model."""
    where = ["--root", settings.root, "--index-dir", settings.index_dir]
    env = {"BEKB_AGENT_FILES": f"{PAYMENTS},{SEARCH}", "BEKB_INCLUDE": "docs/shared-*.md"}
    return invoke(hashing_app(), [*where, *args], env=env)


def test_the_selection_maps_each_agent_file_to_the_files_it_cites(workspace):
    selection = select_files(
        workspace, agent_files=(PAYMENTS, f"./{SEARCH}"), include=("docs/shared-*.md",)
    )
    assert dict(selection.agent_sources) == {
        PAYMENTS: frozenset({LEDGER, *REFUNDS}),
        SEARCH: frozenset({RANKING}),
    }
    assert selection.own_files(SEARCH) == {RANKING, SHARED}
    assert selection.own_files(PAYMENTS) == {LEDGER, SHARED, *REFUNDS}
    assert selection.own_files(OPS) is None


def test_in_the_workspace_scope_an_uncited_skill_folder_belongs_to_every_agent(workspace):
    write(workspace, {"skills/pager/SKILL.md": "# Pager\n\nPage the on-call.\n"})
    selection = select_files(workspace, agent_files=(PAYMENTS, SEARCH), scope="workspace")
    # The workspace scope adds every skill and agent file; the configured ones are not indexed.
    shared = {"skills/pager/SKILL.md", OPS}
    assert selection.own_files(SEARCH) == {RANKING, *shared}
    assert selection.own_files(PAYMENTS) == {LEDGER, *REFUNDS, *shared}


def test_an_agent_answers_from_its_own_files(kb):
    as_payments = kb.ask(LEDGER_QUESTION, persona="payments", use_llm=False)
    as_search = kb.ask(LEDGER_QUESTION, persona="search", use_llm=False)
    assert as_payments.hits[0].path == LEDGER
    assert paths(as_payments.hits) <= {LEDGER, SHARED, *REFUNDS}
    assert paths(as_search.hits) == {RANKING, SHARED}  # only the payments agent cites the ledger
    assert (as_payments.persona, as_payments.persona_notice) == ("payments", "")
    assert (as_search.persona, as_search.persona_notice) == ("search", "")


def test_without_a_persona_the_whole_index_answers(kb):
    answer = kb.ask(LEDGER_QUESTION, k=8, use_llm=False)
    assert answer.hits[0].path == LEDGER
    assert paths(answer.hits) == {LEDGER, RANKING, SHARED, *REFUNDS}
    assert (answer.persona, answer.persona_notice) == ("payments", "")


def test_an_agent_file_not_configured_answers_from_the_whole_index_and_says_so(kb):
    answer = kb.ask(LEDGER_QUESTION, k=8, persona="ops", use_llm=False)
    whole = kb.ask(LEDGER_QUESTION, k=8, use_llm=False)
    assert answer.hits == whole.hits
    assert answer.persona == "ops"
    assert answer.persona_notice == (
        f"ops ({OPS}) is not among the configured agent files (agent_files): "
        "answered from the whole index"
    )


def test_an_agent_gets_k_hits_when_other_agents_files_outrank_them(tmp_path):
    # 100 documents of the search agent match the question better than the payments
    # agent's two: filtering after the candidates were cut would leave it nothing.
    many = {
        f"docs/ranking/{n:03}.md": f"# Ledger entries {n}\n\nLedger entries, ledger entries.\n"
        for n in range(100)
    }
    cites = "".join(f"- `{rel}`\n" for rel in many)
    root = write(
        tmp_path / "root",
        {
            **many,
            PAYMENTS: "---\nname: payments\n---\n\nSee `docs/ledger.md` and `docs/refunds.md`.\n",
            SEARCH: f"---\nname: search\n---\n\n{cites}",
            LEDGER: WORKSPACE[LEDGER],
            "docs/refunds.md": "# Refunds\n\nA refund reverses a ledger entry.\n",
        },
    )
    settings = Settings.load(
        root=root, index_dir=tmp_path / "index", agent_files=(PAYMENTS, SEARCH), lock_timeout=5
    )
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    kb.index()
    answer = kb.ask("ledger entries", k=2, persona="payments", use_llm=False)
    assert paths(answer.hits) == {LEDGER, "docs/refunds.md"}
    assert all(p.startswith("docs/ranking/") for p in paths(kb.search("ledger entries", k=8)))


def test_agents_lists_the_configured_ones_with_their_counts_then_the_others(kb):
    assert kb.agents() == AgentList(
        configured=(
            Agent("payments", PAYMENTS, "The payments engineer.", cited_files=3, own_files=4),
            Agent("search", SEARCH, "The search engineer.", cited_files=1, own_files=2),
        ),
        others=(Agent("ops", OPS, "The on-call engineer."),),
    )


def test_personas_json_lists_the_agents_of_the_index_and_the_others(kb, settings):
    done = cli(settings, "personas", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out) == {
        "root": str(settings.root.resolve()),
        "agents": [
            {
                "name": "payments",
                "path": PAYMENTS,
                "description": "The payments engineer.",
                "cited_files": 3,
                "own_files": 4,
            },
            {
                "name": "search",
                "path": SEARCH,
                "description": "The search engineer.",
                "cited_files": 1,
                "own_files": 2,
            },
        ],
        "others": [{"name": "ops", "path": OPS, "description": "The on-call engineer."}],
    }


def test_personas_prints_one_line_per_agent(kb, settings):
    done = cli(settings, "personas")
    assert done.code == 0, done.err
    assert done.out.splitlines() == [
        "agents of the index (--as NAME answers from its own files):",
        f"  payments ({PAYMENTS}): The payments engineer.  [cites 3 indexed files, answers from 4]",
        f"  search ({SEARCH}): The search engineer.  [cites 1 indexed files, answers from 2]",
        "other agent files under the root (--as NAME answers from the whole index):",
        f"  ops ({OPS}): The on-call engineer.",
    ]


def test_ask_as_an_agent_not_configured_says_so_on_stderr_and_in_json(kb, settings):
    shown = cli(settings, "ask", LEDGER_QUESTION, "--as", "ops", "--no-llm")
    data = json.loads(cli(settings, "ask", LEDGER_QUESTION, "--as", "ops", "--json").out)
    notice = kb.ask(LEDGER_QUESTION, persona="ops", use_llm=False).persona_notice
    assert shown.code == 0, shown.err
    assert f"note: {notice}" in shown.err.splitlines()
    assert data["persona_notice"] == notice


def test_an_empty_persona_is_one_error_line_not_the_default(settings):
    done = cli(settings, "ask", LEDGER_QUESTION, "--as", " ", "--no-llm")
    assert (done.code, done.out) == (2, "")
    assert done.err == "error: the persona is empty: give an agent file's name or path\n"


def test_the_mcp_ask_tool_answers_as_an_agent_from_its_own_files(kb):
    tools = Tools(kb, Budget(100_000, lambda texts: [len(t) for t in texts]))
    own = tools.ask(LEDGER_QUESTION, k=None, persona="search", include_hits=True)
    other = tools.ask(LEDGER_QUESTION, k=None, persona="ops", include_hits=True)
    assert {h["path"] for h in own["hits"]} == {RANKING, SHARED}
    assert other["notice"].endswith("answered from the whole index")
    with pytest.raises(UsageError, match="the persona is empty"):
        tools.ask(LEDGER_QUESTION, k=None, persona="", include_hits=False)


def test_configured_agent_files_answer_by_name_wherever_they_are(tmp_path):
    """A project's own layout (`bekb init`'s): agents in a top-level folder or at the root,
    one without a frontmatter name (its stem names it)."""
    root = write(
        tmp_path / "shop",
        {
            "agents/pay.md": "---\nname: payments\n---\n\nSee `docs/ledger.md`.\n",
            "reviewer.md": "You review changes; see `docs/ledger.md`.\n",
            LEDGER: WORKSPACE[LEDGER],
        },
    )
    settings = Settings.load(
        root=root, index_dir=tmp_path / "index", agent_files=("agents/pay.md", "./reviewer.md")
    )
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())

    assert kb.persona("payments").path == "agents/pay.md"
    assert kb.persona("pay").path == "agents/pay.md"
    assert kb.persona("reviewer").path == "reviewer.md"
    assert {p.path for p in kb.personas()} == {"agents/pay.md", "reviewer.md"}
    kb.index()
    answer = kb.ask(LEDGER_QUESTION, persona="payments", use_llm=False)
    assert (answer.persona, answer.persona_notice) == ("payments", "")
    assert paths(answer.hits) == {LEDGER}
