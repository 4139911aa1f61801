"""The int8 indexing backend: vectors close to fp32, and never mixed with fp32 ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bekb import KnowledgeBase, Settings
from bekb.embedding import (
    BulkOnnxEmbedder,
    OnnxEmbedder,
    index_embedder,
    index_model,
    resolve_model,
)
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
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the model's fp32 ONNX export and its int8 quantisation."""
    folder = tmp_path_factory.mktemp("onnx")
    index_embedder(INT8, folder)
    return folder


@pytest.fixture(scope="module")
def switched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The tiny corpus indexed with fp32, then int8, then fp32 again, in one index dir."""
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
            lock_timeout=30,
        )

    torch_kb = KnowledgeBase.open(settings("torch"))
    fp32 = torch_kb.index()
    fp32_meta = torch_kb.store.active()
    int8_kb = KnowledgeBase.open(settings("onnx-int8"))
    int8 = int8_kb.index()
    int8_meta = int8_kb.store.active()
    int8_hits = int8_kb.search(SAGA_QUERY, k=3)
    models_after_int8 = cached_models(base / "index")
    back = KnowledgeBase.open(settings("torch")).index()
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
    }


def test_int8_vectors_are_close_to_fp32(onnx_dir, real_embedder, tiny_root):
    texts = [p.read_text(encoding="utf-8")[:1500] for p in sorted(tiny_root.rglob("*.md"))]

    int8 = index_embedder(INT8, onnx_dir).embed(texts)

    cosines = np.sum(int8 * real_embedder.embed(texts), axis=1)
    assert int8.shape == (len(texts), 384)
    assert float(cosines.min()) >= 0.98


def test_an_int8_vector_depends_only_on_its_text(onnx_dir):
    model = index_embedder(INT8, onnx_dir)
    texts = ["a much longer text about sagas and compensation " * 8, "short", "mid length text"]

    together = model.embed(texts)

    alone = np.vstack([model.embed([text]) for text in texts])
    assert np.allclose(together, alone, atol=1e-6)


def test_the_bulk_embedder_returns_rows_in_the_order_given(onnx_dir):
    folder = onnx_dir / FP32.fingerprint  # the fp32 export the int8 model was made from
    texts = ["short", "a much longer text about sagas and compensation " * 8, "mid length text"]

    bulk = BulkOnnxEmbedder(folder, batch_size=2).embed(texts)

    assert np.allclose(bulk, OnnxEmbedder(folder).embed(texts), atol=1e-5)


def test_the_int8_backend_has_its_own_model_fingerprint():
    assert index_model(FP32, "torch") == FP32
    assert INT8.fingerprint != FP32.fingerprint


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


def test_switching_back_to_fp32_reuses_the_fp32_vectors_not_the_int8_ones(switched):
    back = switched["back"]
    assert (back.full_rebuild, back.embedded, back.cached) == (True, 0, back.chunks)


def test_an_int8_index_answers_queries_with_its_own_int8_model(switched):
    kb, meta = switched["int8_kb"], switched["int8_meta"]
    folder = switched["index_dir"] / "onnx" / meta.model_fingerprint
    assert "int8" in (folder / "meta.json").read_text()
    assert isinstance(kb._query_embedder(meta), OnnxEmbedder)
    assert switched["int8_hits"][0].path.startswith("alpha/skills/sagas/")
