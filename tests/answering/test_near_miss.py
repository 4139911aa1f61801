"""Near misses: a question on a topic next to what the corpus covers is not answered as if it
were covered; the part the corpus lacks is named, in the answer and in its `uncovered` field.

The fixture corpus (tests/fixtures/near_miss) covers PostgreSQL connection pooling with
PgBouncer; MySQL with ProxySQL, or HikariCP in Spring Boot, sit right next to it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_support import invoke
from conftest import FIXTURES

from bekb import KnowledgeBase, contracts
from bekb.cli.app import build_app

AGENT = "specialists/db-specialist.md"


@pytest.fixture(scope="module")
def pooling(tmp_path_factory) -> KnowledgeBase:
    """The fixture corpus indexed with the real model (the machine's ONNX export)."""
    root = tmp_path_factory.mktemp("near-miss") / "root"
    shutil.copytree(FIXTURES / "near_miss", root)
    kb = KnowledgeBase.open(root=root, index_dir=root.parent / "index", agent_files=[AGENT])
    kb.index()
    return kb


@pytest.mark.parametrize(
    "question",
    [
        "how do I size the PgBouncer pool for PostgreSQL",
        "what breaks under transaction pooling",  # no names at all
    ],
)
def test_a_covered_question_is_answered_with_nothing_uncovered(pooling, question):
    answer = pooling.ask(question, use_llm=False)
    assert (answer.mode, answer.uncovered) == ("extractive", ())
    assert answer.citations[0].path == "skills/pooling/SKILL.md"


@pytest.mark.parametrize(
    ("question", "missing"),
    [
        ("how do I set up ProxySQL connection pooling for MySQL", ("ProxySQL", "MySQL")),
        ("how do I tune the HikariCP pool in Spring Boot", ("HikariCP", "Spring", "Boot")),
    ],
)
def test_an_adjacent_topic_is_an_abstention_naming_what_is_missing(pooling, question, missing):
    answer = pooling.ask(question, use_llm=False)
    assert answer.mode == "abstain"
    assert answer.uncovered == missing
    assert answer.citations == ()
    first, second = answer.text.splitlines()[:2]
    assert first == f"The knowledge base does not cover this question: {question}"
    assert second.startswith("The knowledge base never mentions ")


def test_a_partly_covered_question_is_answered_and_says_what_it_lacks(pooling):
    answer = pooling.ask(
        "which pool mode should I use with PgBouncer when running on Kubernetes", use_llm=False
    )
    assert (answer.mode, answer.uncovered) == ("extractive", ("Kubernetes",))
    assert answer.text.splitlines()[0] == "The knowledge base never mentions Kubernetes."
    assert "## Pool modes" in answer.citations[0].quote
    assert contracts.answer_json(answer)["uncovered"] == ["Kubernetes"]


def test_the_cli_prints_the_line_and_the_json_carries_the_field(pooling):
    s = pooling.settings
    args = ["--root", s.root, "--index-dir", s.index_dir, "ask", "--no-llm"]
    env = {"BEKB_AGENT_FILES": AGENT}
    question = "how do I set up ProxySQL connection pooling for MySQL"
    done = invoke(build_app(), [*args, question, "--fail-empty"], env=env)
    assert done.code == 3
    assert "The knowledge base never mentions ProxySQL or MySQL." in done.out
    done = invoke(build_app(), [*args, question, "--json"], env=env)
    assert json.loads(done.out)["uncovered"] == ["ProxySQL", "MySQL"]


def test_the_fixture_is_what_the_tests_say(pooling):
    text = (Path(pooling.settings.root) / "skills/pooling/SKILL.md").read_text()
    assert "PgBouncer" in text and "MySQL" not in text and "Kubernetes" not in text
