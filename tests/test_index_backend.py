"""Indexing backends: fp32 through ONNX or torch share vectors; int8 is close but never mixed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bekb import KnowledgeBase, Settings
from bekb.embedding.backends import index_embedder, index_model
from bekb.embedding.model import resolve_model
from bekb.embedding.onnx import OnnxEmbedder
from bekb.settings import DEFAULT_EMBED_MODEL

SAGA_QUERY = "compensating action for a failed saga step"
FP32 = resolve_model(DEFAULT_EMBED_MODEL)
INT8 = index_model(FP32, "onnx-int8")


def cached_models(index_dir: Path) -> set[str]:
    db = sqlite3.connect(index_dir / "embeddings.sqlite")
    try:
        return {row[0] for row in db.execute("SELECT DISTINCT model FROM vectors")}
    finally:
        db.close()


@pytest.fixture(scope="module")
def onnx_dir(machine_cache: Path) -> Path:
    """The session's exports folder, holding the fp32 ONNX export and its int8 quantisation."""
    folder = machine_cache / "onnx"
    index_embedder(INT8, "onnx-int8", folder, [])
    return folder


@pytest.fixture(scope="module")
def switched(tmp_path_factory: pytest.TempPathFactory, machine_cache: Path) -> dict[str, object]:
    """The tiny corpus indexed with fp32 (ONNX), then int8, then fp32 (torch), in one dir."""
    import shutil

    from conftest import FIXTURES, TINY_AGENT

    base = tmp_path_factory.mktemp("index-backend")
    root = base / "root"
    shutil.copytree(FIXTURES / "corpus", root)

    def settings(backend: str) -> Settings:
        return Settings.load(
            root=root,
            index_dir=base / "index",
            agent_files=(TINY_AGENT,),
            index_backend=backend,
            cache_dir=machine_cache,
            lock_timeout=30,
        )

    onnx_kb = KnowledgeBase.open(settings("onnx"))
    fp32 = onnx_kb.index()
    fp32_meta = onnx_kb.store.active()
    reader = KnowledgeBase.open(settings("onnx"))  # a long-lived process (an MCP server)
    reader.search(SAGA_QUERY, k=3)
    reader_before = reader._retrieval()._embedder
    int8_kb = KnowledgeBase.open(settings("onnx-int8"))
    int8 = int8_kb.index()
    int8_meta = int8_kb.store.active()
    int8_hits = int8_kb.search(SAGA_QUERY, k=3)
    reader_hits = reader.search(SAGA_QUERY, k=3)
    reader_after = reader._retrieval()._embedder
    models_after_int8 = cached_models(base / "index")
    statuses = {"int8 as int8": int8_kb.status(), "int8 as fp32": reader.status()}
    back = KnowledgeBase.open(settings("torch")).index()
    statuses["torch as onnx"] = KnowledgeBase.open(settings("onnx")).status()
    return {
        "index_dir": base / "index",
        "fp32": fp32,
        "int8": int8,
        "back": back,
        "fp32_meta": fp32_meta,
        "int8_meta": int8_meta,
        "int8_kb": int8_kb,
        "int8_hits": int8_hits,
        "models_after_int8": models_after_int8,
        "reader_embedders": (reader_before, reader_after),
        "reader_hits": reader_hits,
        "statuses": statuses,
    }


def test_int8_vectors_are_close_to_fp32(onnx_dir, real_embedder, tiny_root):
    texts = [p.read_text(encoding="utf-8")[:1500] for p in sorted(tiny_root.rglob("*.md"))]

    int8 = index_embedder(INT8, "onnx-int8", onnx_dir, []).embed(texts)

    cosines = np.sum(int8 * real_embedder.embed(texts), axis=1)
    assert int8.shape == (len(texts), 384)
    assert float(cosines.min()) >= 0.98


def test_an_int8_vector_depends_only_on_its_text(onnx_dir):
    model = index_embedder(INT8, "onnx-int8", onnx_dir, [])
    texts = ["a much longer text about sagas and compensation " * 8, "short", "mid length text"]

    together = model.embed(texts)

    alone = np.vstack([model.embed([text]) for text in texts])
    assert np.allclose(together, alone, atol=1e-6)


def test_sessions_running_at_once_give_each_text_the_vector_one_session_gives(onnx_dir):
    folder = onnx_dir / INT8.fingerprint
    texts = [f"step {n} of the saga compensates step {n - 1}" * (1 + n % 5) for n in range(9)]

    alone = OnnxEmbedder(folder, batch_size=1).embed(texts)
    shared = OnnxEmbedder(folder, batch_size=1, sessions=2).embed(texts)

    assert np.array_equal(shared, alone)  # same rows, in the order given


def test_the_onnx_embedder_returns_rows_in_the_order_given_whatever_the_batching(onnx_dir):
    folder = onnx_dir / FP32.fingerprint  # the fp32 export the int8 model was made from
    texts = ["short", "a much longer text about sagas and compensation " * 8, "mid length text"]

    batched = OnnxEmbedder(folder, batch_size=2).embed(texts)

    alone = np.vstack([OnnxEmbedder(folder).embed([text]) for text in texts])
    assert np.allclose(batched, alone, atol=1e-5)


def test_the_int8_model_keeps_the_first_feed_forward_outputs_in_fp32(onnx_dir):
    import json

    import onnx

    folder = onnx_dir / INT8.fingerprint
    kept = json.loads((folder / "meta.json").read_text())["fp32_nodes"]
    ops = {n.name: n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node}

    assert kept == [f"/inner/encoder/layer.{n}/output/dense/MatMul" for n in (0, 1)]
    assert all(ops[name] == "MatMul" for name in kept)
    assert ops["/inner/encoder/layer.2/output/dense/MatMul_quant"] == "MatMulInteger"
    assert sum(op == "MatMulInteger" for op in ops.values()) == 34  # 36 weight MatMuls, 2 kept


def test_the_int8_backend_has_its_own_model_fingerprint():
    assert index_model(FP32, "torch") == FP32
    assert index_model(FP32, "onnx") == FP32  # the checked fp32 export: the model's own vectors
    assert INT8.fingerprint != FP32.fingerprint


@pytest.mark.slow  # long: runs in `make test-rest`
def test_an_int8_build_embeds_everything_itself_and_keeps_its_own_cache_entries(switched):
    fp32, int8 = switched["fp32"], switched["int8"]
    fp32_meta, int8_meta = switched["fp32_meta"], switched["int8_meta"]
    assert (int8.full_rebuild, int8.embedded, int8.cached) == (True, int8.chunks, 0)
    assert int8_meta.model_fingerprint != fp32_meta.model_fingerprint
    assert int8_meta.fingerprint != fp32_meta.fingerprint
    assert switched["models_after_int8"] == {
        fp32_meta.model_fingerprint,
        int8_meta.model_fingerprint,
    }
    assert fp32.chunks == int8.chunks


@pytest.mark.slow  # long: runs in `make test-rest`
def test_fp32_through_torch_reuses_the_onnx_built_vectors_not_the_int8_ones(switched):
    back = switched["back"]
    assert (back.full_rebuild, back.embedded, back.cached) == (True, 0, back.chunks)


@pytest.mark.slow  # long: runs in `make test-rest`
def test_an_int8_index_answers_queries_with_its_own_int8_model(switched):
    kb, meta = switched["int8_kb"], switched["int8_meta"]
    folder = switched["int8_kb"].models.export_folder(meta.model_fingerprint)
    assert "int8" in (folder / "meta.json").read_text()
    assert isinstance(kb.models.for_queries(meta), OnnxEmbedder)
    assert switched["int8_hits"][0].path.startswith("alpha/skills/sagas/")


BUILD_SCRIPT = """
import json, sys
from bekb import KnowledgeBase
kb = KnowledgeBase.open(root=sys.argv[1], index_dir=sys.argv[2], agent_files=[sys.argv[3]])
report = kb.index()
heavy = {"torch", "sentence_transformers", "transformers"} & set(sys.modules)
print(json.dumps({"embedded": report.embedded, "heavy": sorted(heavy)}))
"""


def test_the_default_backend_never_loads_torch_in_the_indexing_process(tiny_root, tmp_path):
    import json
    import subprocess
    import sys

    from conftest import TINY_AGENT

    index_dir = tmp_path / "index"

    def build() -> dict[str, object]:
        args = [sys.executable, "-c", BUILD_SCRIPT, str(tiny_root), str(index_dir), TINY_AGENT]
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
        return json.loads(done.stdout)

    cold = build()
    edited = tiny_root / "alpha/skills/sagas/SKILL.md"
    edited.write_text(edited.read_text() + "\n## Retries\n\nRetry a step at most three times.\n")
    again = build()

    assert cold["heavy"] == again["heavy"] == []  # the export ran in a child process
    assert cold["embedded"] > again["embedded"] > 0
    exports = Settings.load().cache_folder / "onnx"  # the session's, through BEKB_CACHE_DIR
    meta = json.loads((exports / FP32.fingerprint / "meta.json").read_text())
    assert meta["min_cosine"] >= 0.999


@pytest.mark.hardening  # a fault: a child process importing torch to fail (make test-rest)
def test_a_model_that_cannot_be_exported_is_reported_by_the_child_and_not_used(tmp_path):
    from bekb.embedding.backends import ensure_export
    from bekb.embedding.model import ModelSpec
    from bekb.embedding.onnx import export_in_child
    from bekb.errors import EmbeddingError

    bogus = ModelSpec("not-a-model", tmp_path)  # an empty folder

    with pytest.raises(EmbeddingError, match="not-a-model"):
        export_in_child(bogus, tmp_path / "onnx" / "x", ["some text"])
    assert ensure_export(bogus, tmp_path / "onnx", ["some text"]) is None
    assert not (tmp_path / "onnx" / bogus.fingerprint).exists()


@pytest.mark.slow  # long: runs in `make test-rest`
def test_a_long_lived_reader_embeds_queries_with_the_int8_model_after_a_switch(switched):
    before, after = switched["reader_embedders"]
    assert isinstance(before, OnnxEmbedder) and isinstance(after, OnnxEmbedder)
    assert after is not before  # same model name, other fingerprint: the int8 export
    assert [(h.path, h.start_line) for h in switched["reader_hits"]] == [
        (h.path, h.start_line) for h in switched["int8_hits"]
    ]


@pytest.mark.slow  # long: runs in `make test-rest`
def test_status_says_how_the_index_was_embedded_and_when_the_settings_will_rebuild_it(switched):
    statuses = switched["statuses"]

    assert statuses["int8 as int8"].index_backend == "onnx-int8"
    assert statuses["int8 as int8"].rebuild_pending is None
    assert statuses["int8 as fp32"].index_backend == "onnx-int8"
    assert statuses["int8 as fp32"].rebuild_pending == (
        "index_backend gives fp32 vectors (the index has others)"
    )
    # torch and onnx give the model's own vectors: switching between them rebuilds nothing
    assert statuses["torch as onnx"].index_backend == "fp32"
    assert statuses["torch as onnx"].rebuild_pending is None
