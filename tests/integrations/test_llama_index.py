"""bekb as llama-index components, on real llama-index and the real cited index: retriever,
query engine, tools, evaluator, node parser, and the import that only happens when used."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEV_QUESTIONS, FIXTURES, REPO, subprocess_env
from llama_index.core import SimpleDirectoryReader
from llama_index.core.evaluation import RetrieverEvaluator
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.schema import Document, MetadataMode, NodeWithScore
from llama_index.core.tools import QueryEngineTool, RetrieverTool

from bekb import KnowledgeBase, UsageError
from bekb.chunking import chunk_file
from bekb.domain import Hit
from bekb.embedding.model import resolve_model
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.evaluation import Question, rank_of, read_questions
from bekb.integrations.llama_index import (
    BekbNodeParser,
    as_query_engine,
    as_retriever,
    as_tool,
)
from bekb.settings import DEFAULT_EMBED_MODEL

README = REPO / "README.md"
QUESTION = "how do I compensate a failed saga step"
# A few real corpus files: a skill, one of its references, an agent file and a data file.
CORPUS_FILES = (
    "agents/plugins/backend-development/skills/saga-orchestration/SKILL.md",
    "agents/plugins/backend-development/skills/saga-orchestration/references/details.md",
    "agents/plugins/api-scaffolding/agents/fastapi-pro.md",
    "ralph-orchestrator/backend/ralph-web-server/package.json",
)


def placed(scored: list[NodeWithScore]) -> list[tuple[str, str, int, int, str]]:
    """(id, path, start line, end line, text) of each node, in order."""
    return [
        (
            s.node.node_id,
            s.node.metadata["path"],
            s.node.metadata["start_line"],
            s.node.metadata["end_line"],
            s.node.get_content(MetadataMode.NONE),
        )
        for s in scored
    ]


def hits_placed(hits: list[Hit]) -> list[tuple[str, str, int, int, str]]:
    return [(h.chunk_ids[0], h.path, h.start_line, h.end_line, h.text) for h in hits]


def chunk_ids_by_path(kb: KnowledgeBase) -> dict[str, tuple[str, ...]]:
    meta = kb.store.active()
    assert meta is not None
    return {path: record.chunk_ids for path, record in kb.store.files(meta.collection).items()}


# -- retriever, query engine, tools -------------------------------------------------------


def test_a_hit_becomes_a_node_with_its_chunk_id_and_citation_metadata(cited_kb):
    [hit] = cited_kb.search(QUESTION, k=1)
    [scored] = as_retriever(cited_kb, k=1).retrieve(QUESTION)

    assert scored.node.node_id == hit.chunk_ids[0]
    assert scored.score == hit.score
    assert scored.node.metadata == {
        "path": hit.path,
        "heading": hit.heading,
        "start_line": hit.start_line,
        "end_line": hit.end_line,
        "label": hit.label,
        "location": hit.location,
        "copies": [c.path for c in hit.copies],
        "chunk_ids": list(hit.chunk_ids),
    }
    assert scored.node.get_content(MetadataMode.LLM) == (
        f"heading: {hit.heading}\nlocation: {hit.location}\n\n{hit.text}".rstrip()
    )
    assert scored.node.get_content(MetadataMode.EMBED) == (
        f"heading: {hit.heading}\n\n{hit.text}".rstrip()
    )


def test_a_query_engine_with_mock_llm_answers_from_bekbs_passages_in_search_order(cited_kb):
    engine = as_query_engine(cited_kb, llm=MockLLM(), k=3)

    response = engine.query(QUESTION)

    hits = cited_kb.search(QUESTION, k=3)
    assert placed(response.source_nodes) == hits_placed(hits)
    # MockLLM answers with the prompt it got: every passage reached it, with its location.
    assert all(f"location: {h.location}\n\n{h.text.rstrip()}" in str(response) for h in hits)


def test_async_retrieval_gives_what_the_sync_one_does(cited_kb):
    retriever = as_retriever(cited_kb, k=4)

    assert placed(asyncio.run(retriever.aretrieve(QUESTION))) == placed(
        retriever.retrieve(QUESTION)
    )


def test_the_tool_without_llm_returns_passages_for_its_input_as_an_agent_passes_it(cited_kb):
    tool = as_tool(cited_kb, k=3)

    output = tool.call(input=QUESTION)  # agents pass arguments by name

    assert isinstance(tool, RetrieverTool)
    assert tool.metadata.name == "bekb"
    assert output.raw_input == {"input": QUESTION}
    assert placed(output.raw_output) == hits_placed(cited_kb.search(QUESTION, k=3))
    assert asyncio.run(tool.acall(QUESTION)).content == output.content


def test_the_tool_with_an_llm_answers_through_the_query_engine(cited_kb):
    tool = as_tool(cited_kb, llm=MockLLM(max_tokens=4), name="backend_kb", k=2)

    output = tool.call(input=QUESTION)

    assert isinstance(tool, QueryEngineTool)
    assert (tool.metadata.name, output.content) == ("backend_kb", "text text text text")
    assert placed(output.raw_output.source_nodes) == hits_placed(cited_kb.search(QUESTION, k=2))


def test_a_bad_k_is_refused_when_the_retriever_is_made(cited_kb):
    with pytest.raises(UsageError, match="k must be at least 1"):
        as_retriever(cited_kb, k=0)


# -- evaluation ---------------------------------------------------------------------------


def counted(questions_file: Path) -> list[Question]:
    """The questions `bekb eval` scores hit and MRR on over a cited-scope index: those with
    relevant files (negatives count for abstention only), `corpus: full` ones left out."""
    return [q for q in read_questions(questions_file) if q.corpus != "full" and not q.negative]


@pytest.mark.slow
@pytest.mark.skipif(not DEV_QUESTIONS.exists(), reason="no ../shared/eval/dev.jsonl")
def test_llama_index_retriever_evaluator_agrees_with_bekb_eval(cited_kb):
    report = cited_kb.evaluate(DEV_QUESTIONS)
    questions = counted(DEV_QUESTIONS)
    assert report.overall.positives == len(questions)
    ranks = {m["id"]: m["rank"] for m in report.misses}  # the others ranked first
    bekb_hit10 = sum(ranks.get(q.id, 1) is not None for q in questions) / len(questions)
    bekb_mrr10 = report.overall.mrr10 / len(questions)

    retriever = as_retriever(cited_kb, k=10)
    evaluator = RetrieverEvaluator.from_metric_names(["hit_rate", "mrr"], retriever=retriever)
    chunk_ids = chunk_ids_by_path(cited_kb)
    hit10 = mrr10 = folded_hit = folded_mrr = 0.0
    for q in questions:
        expected = [cid for path in q.relevant for cid in chunk_ids[path]]
        scores = evaluator.evaluate(query=q.question, expected_ids=expected).metric_vals_dict
        hit10 += scores["hit_rate"]
        mrr10 += scores["mrr"]
        # bekb counts a relevant file whose passage was folded into a hit from another file
        # (the same text, `Hit.copies`) at that hit's rank; the evaluator matches node ids,
        # the hit's own file's chunks, so to it that hit is a miss.
        nodes = retriever.retrieve(q.question)
        paths = [n.node.metadata["path"] for n in nodes]
        own = rank_of(q, paths)
        with_copies = rank_of(q, paths, copies=[n.node.metadata["copies"] for n in nodes])
        assert with_copies == ranks.get(q.id, 1), q.id
        folded_hit += (with_copies is not None) - (own is not None)
        folded_mrr += (1 / with_copies if with_copies else 0) - (1 / own if own else 0)

    n = len(questions)
    assert hit10 / n == pytest.approx(bekb_hit10 - folded_hit / n)
    assert mrr10 / n == pytest.approx(bekb_mrr10 - folded_mrr / n)


# -- node parser --------------------------------------------------------------------------


def test_an_ingestion_pipeline_with_bekbs_parser_yields_the_indexed_chunks(cited_kb):
    settings = cited_kb.settings
    meta = cited_kb.store.active()
    assert meta is not None
    records = cited_kb.store.files(meta.collection)
    files = [settings.root / p for p in CORPUS_FILES]
    documents = SimpleDirectoryReader(input_files=files).load_data()
    pipeline = IngestionPipeline(transformations=[BekbNodeParser.from_settings(settings)])

    nodes = pipeline.run(documents=documents)

    indexed = [
        (c.path, c.start_line, c.end_line, c.heading, c.id, c.text)
        for p in CORPUS_FILES
        for c in sorted(
            cited_kb.store.get_chunks(meta.collection, records[p].chunk_ids),
            key=lambda c: c.ordinal,
        )
    ]
    got = [
        (
            n.metadata["path"],
            n.metadata["start_line"],
            n.metadata["end_line"],
            n.metadata["heading"],
            n.node_id,
            n.get_content(MetadataMode.NONE),
        )
        for n in nodes
    ]
    assert got == indexed
    document_of = dict(zip(CORPUS_FILES, [d.id_ for d in documents], strict=True))
    assert [n.ref_doc_id for n in nodes] == [document_of[n.metadata["path"]] for n in nodes]


def test_the_parser_chunks_code_as_indexing_does_with_exact_offsets():
    path = "beta/src/server.py"
    text = (FIXTURES / "corpus" / path).read_text(encoding="utf-8")
    counter = ModelTokenizer.for_model(resolve_model(DEFAULT_EMBED_MODEL))

    nodes = BekbNodeParser().get_nodes_from_documents(
        [Document(text=text, metadata={"path": path})]
    )

    chunks = chunk_file(path, text, "unused", counter)
    assert [
        (n.node_id, n.metadata["heading"], n.metadata["start_line"], n.metadata["end_line"])
        for n in nodes
    ] == [(c.id, c.heading, c.start_line, c.end_line) for c in chunks]
    assert [text[n.start_char_idx : n.end_char_idx] for n in nodes] == [c.text for c in chunks]
    assert {n.metadata["kind"] for n in nodes} == {"code"}


def test_a_document_without_a_path_is_refused():
    with pytest.raises(UsageError, match="has no path"):
        BekbNodeParser().get_nodes_from_documents([Document(text="# Title\n\nbody\n")])


# -- lazy import --------------------------------------------------------------------------


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (listed on stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; sys.stderr.write(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=subprocess_env(),
    )
    return set(done.stderr.split())


def test_bekb_and_the_cli_query_path_never_import_llama_index(cited_index):
    search = (
        "from bekb.cli.app import build_app, run\n"
        f"assert run(build_app(), ['--root', {str(cited_index.root)!r}, '--index-dir', "
        f"{str(cited_index.index_dir)!r}, 'search', 'saga compensation', '-k', '2']) == 0"
    )
    assert "llama_index" not in modules_after("import bekb, bekb.integrations, bekb.cli.query")
    loaded = modules_after(search)
    assert "bekb.cli.query" in loaded
    assert "llama_index" not in loaded
    assert "llama_index" in modules_after("import bekb.integrations.llama_index")


# -- README -------------------------------------------------------------------------------


def section_code(markdown: str, heading: str) -> str:
    """The first Python code block under `heading`, before the next heading of its level."""
    level = heading.split(" ")[0]
    found = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^{level} |\Z)", markdown, re.M | re.S)
    assert found, f"README.md has no section {heading!r}"
    code = re.search(r"```py(?:thon)?\n(.*?)```", found.group(1), re.S)
    assert code, f"README.md's section {heading!r} has no Python example"
    return code.group(1)


def test_readme_llama_index_example_runs(cited_index, tmp_path, monkeypatch, capsys):
    # The example uses the defaults (./corpus, ./index), as after `make ask`.
    (tmp_path / "corpus").symlink_to(cited_index.root)
    (tmp_path / "index").symlink_to(cited_index.index_dir)
    monkeypatch.chdir(tmp_path)
    example = section_code(README.read_text(encoding="utf-8"), "## Use from llama-index")

    exec(compile(example, "README.md", "exec"), {})

    *retrieved, sources, tool = capsys.readouterr().out.splitlines()
    assert len(retrieved) == 3
    assert all(re.fullmatch(r"\S+\.md:\d+(-\d+)? [0-9a-f]{32}", line) for line in retrieved)
    assert sources.startswith("['") and ".md:" in sources
    assert re.fullmatch(r"bekb \S+\.md#.* \(lines \d+-\d+\)", tool)
