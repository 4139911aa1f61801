"""Damaged index files: the Chroma SQLite store and its segments, the keyword index
(`index/bm25/*`), the embedding cache (`index/embeddings.sqlite`) and the ONNX export
(the model's ONNX export). Each is detected and rebuilt, or reported in one clear line: never a
traceback, never wrong results served silently.

Chroma keeps a store open per path inside a process, so damage to its files is checked from a
fresh process (kb_probe.py); the other files are read anew by every KnowledgeBase.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_AGENT, HashingEmbedder, assert_consistent
from hardening_support import error_line, probe, run_cli, tally

from bekb import EmbeddingError, KnowledgeBase
from bekb.retrieval.bm25 import keyword_folder
from bekb.settings import DEFAULT_EMBED_MODEL

pytestmark = pytest.mark.hardening

QUERY = "saga compensation"


@pytest.fixture
def built(tiny_kb: KnowledgeBase) -> KnowledgeBase:
    tiny_kb.index()
    return tiny_kb


def _fresh(kb: KnowledgeBase) -> KnowledgeBase:
    return KnowledgeBase.open(kb.settings, embedder=HashingEmbedder())


def _paths(kb: KnowledgeBase) -> list[tuple[str, int]]:
    return [(h.path, h.start_line) for h in _fresh(kb).search(QUERY, k=5)]


def _garble(path: Path, start: int, count: int, seed: int = 7) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for i in range(start, min(len(data), start + count)):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))


def _probe(kb: KnowledgeBase, *ops: str) -> list[dict[str, object]]:
    return probe(kb.settings.root, kb.settings.index_dir, TINY_AGENT, *ops)


# -- the Chroma store ------------------------------------------------------------------------------

SQLITE_DAMAGE = {
    "garbage": lambda p: p.write_bytes(b"this is not a database" * 50),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:4096]),
    "page-zeroed": lambda p: p.write_bytes(
        p.read_bytes()[:4096] + bytes(4096) + p.read_bytes()[8192:]
    ),
}


@pytest.mark.parametrize("damage", list(SQLITE_DAMAGE))
def test_a_damaged_chroma_database_is_a_one_line_error_never_a_traceback(built, damage):
    SQLITE_DAMAGE[damage](built.settings.index_dir / "chroma" / "chroma.sqlite3")
    s = built.settings

    done = run_cli("--root", s.root, "--index-dir", s.index_dir, "search", QUERY,
                   env={"BEKB_AGENT_FILES": TINY_AGENT})  # fmt: skip

    assert (done.returncode, done.stdout) == (1, "")
    line = error_line(done)
    assert "malformed" in line or "not a database" in line, line
    tally("corrupted index files", 1)


def test_an_emptied_chroma_database_reads_as_no_index_and_is_rebuilt(built):
    (built.settings.index_dir / "chroma" / "chroma.sqlite3").write_bytes(b"")

    first, index, search = _probe(built, f"search:{QUERY}", "index", f"search:{QUERY}")

    assert (first["error"], first["message"]) == (
        "IndexNotBuiltError",
        "no index yet: run `bekb index` first",
    )
    assert index["ok"] and search["ok"] and search["paths"]
    tally("corrupted index files", 1)


def test_index_rebuilds_a_damaged_chroma_database(built):
    SQLITE_DAMAGE["garbage"](built.settings.index_dir / "chroma" / "chroma.sqlite3")

    index, search = _probe(built, "index", f"search:{QUERY}")

    assert index["ok"] and search["ok"] and search["paths"]
    assert [p.name.startswith("chroma.damaged-") for p in built.settings.index_dir.iterdir()].count(
        True
    ) == 1  # set aside for inspection, not deleted
    tally("corrupted index files", 1)


# -- the keyword index -----------------------------------------------------------------------------


def _shuffle_ids(folder: Path) -> None:
    ids = json.loads((folder / "chunk_ids.json").read_text())
    random.Random(3).shuffle(ids)
    (folder / "chunk_ids.json").write_text(json.dumps(ids))


KEYWORD_DAMAGE = {
    "folder-deleted": lambda f: shutil.rmtree(f),
    "matrix-garbled": lambda f: _garble(f / "data.csc.index.npy", 128, 64),
    "ids-truncated": lambda f: (f / "chunk_ids.json").write_text(
        json.dumps(json.loads((f / "chunk_ids.json").read_text())[:-3])
    ),
    "ids-shuffled": _shuffle_ids,
    "vocabulary-emptied": lambda f: (f / "vocab.index.json").write_text("{}"),
    "checksums-deleted": lambda f: (f / "bekb-checksums.json").unlink(),
}


def _keyword_folder(kb: KnowledgeBase) -> Path:
    meta = kb.store.active()
    assert meta is not None
    return keyword_folder(kb.settings.index_dir, meta.collection, meta.generation)


@pytest.mark.parametrize("damage", list(KEYWORD_DAMAGE))
def test_search_never_serves_a_plausible_but_wrong_keyword_index(built, damage):
    before = _paths(built)
    KEYWORD_DAMAGE[damage](_keyword_folder(built))

    assert _paths(built) == before  # detected on load and rebuilt from the store
    tally("corrupted index files", 1)


@pytest.mark.parametrize("damage", list(KEYWORD_DAMAGE))
def test_index_repairs_a_damaged_keyword_index(built, damage):
    from bekb.retrieval.bm25 import KeywordIndex

    KEYWORD_DAMAGE[damage](_keyword_folder(built))

    _fresh(built).index()

    meta = built.store.active()
    assert meta is not None
    live = [c for r in built.store.files(meta.collection).values() for c in r.chunk_ids]
    assert KeywordIndex.load(_keyword_folder(built), expect=live).chunk_ids
    tally("corrupted index files", 1)


# -- the embedding cache ---------------------------------------------------------------------------

CACHE_DAMAGE = {
    "garbage": lambda p: p.write_bytes(b"not sqlite at all" * 100),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:1024]),
    "emptied": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("damage", list(CACHE_DAMAGE))
def test_a_damaged_embedding_cache_is_replaced_and_results_do_not_change(built, damage):
    before = _paths(built)
    cache = built.settings.index_dir / "embeddings.sqlite"
    for side in (cache.with_name(cache.name + "-wal"), cache.with_name(cache.name + "-shm")):
        side.unlink(missing_ok=True)
    CACHE_DAMAGE[damage](cache)

    report = _fresh(built).index(full=True)

    assert report.embedded == report.chunks  # recomputed, not read from the damaged file
    assert_consistent(built)
    assert _paths(built) == before
    tally("corrupted index files", 1)


def test_an_embedding_cache_with_a_foreign_schema_is_rebuilt(built):
    cache = built.settings.index_dir / "embeddings.sqlite"
    with sqlite3.connect(cache) as db:
        db.execute("DROP TABLE vectors")
        db.execute("CREATE TABLE vectors (x)")

    report = _fresh(built).index(full=True)

    assert report.chunks > 0
    tally("corrupted index files", 1)


def test_corrupted_cached_vectors_are_never_served(built):
    before = _paths(built)
    cache = built.settings.index_dir / "embeddings.sqlite"
    rng = np.random.default_rng(5)
    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT model, text_sha, vector FROM vectors").fetchall()
        for model, key, blob in rows:
            noise = rng.normal(size=len(blob) // 4).astype(np.float32).tobytes()
            db.execute(
                "UPDATE vectors SET vector = ? WHERE model = ? AND text_sha = ?",
                (noise, model, key),
            )

    _fresh(built).index(full=True)

    assert _paths(built) == before
    tally("corrupted index files", 1)


# -- the ONNX export -------------------------------------------------------------------------------


class _BundledModelName(HashingEmbedder):
    """The hashing model filed under the bundled model's name: the index looks real-built."""

    model_id = DEFAULT_EMBED_MODEL
    dimensions = 384


@pytest.fixture
def real_named(tiny_settings, tmp_path) -> KnowledgeBase:
    # A cache of its own: these tests damage the export, which the session's others share.
    settings = tiny_settings.model_copy(update={"cache_dir": tmp_path / "cache"})
    KnowledgeBase.open(settings, embedder=_BundledModelName()).index()
    return KnowledgeBase.open(settings)  # no injected model: queries go through ONNX


def _fake_export(kb: KnowledgeBase, model_onnx: bytes) -> Path:
    meta = kb.store.active()
    assert meta is not None
    folder = kb.settings.cache_folder / "onnx" / meta.model_fingerprint
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(
        json.dumps({"model_id": meta.embed_model, "dimensions": 384, "pooling": "mean",
                    "max_tokens": 256})
    )  # fmt: skip
    (folder / "model.onnx").write_bytes(model_onnx)
    (folder / "tokenizer.json").write_text("{}")
    return folder


def test_a_damaged_onnx_export_is_a_one_line_embedding_error_naming_the_folder(real_named):
    folder = _fake_export(real_named, os.urandom(2048))
    onnx_only = KnowledgeBase.open(real_named.settings, query_backend="onnx")

    with pytest.raises(EmbeddingError) as caught:
        onnx_only.search(QUERY)

    message = str(caught.value)
    assert message == f"the ONNX model in {folder} is damaged: run `bekb index` to make it again"
    assert "\n" not in message
    tally("corrupted index files", 1)


def test_auto_backend_still_answers_through_sentence_transformers_if_the_export_is_damaged(
    real_named,
):
    _fake_export(real_named, os.urandom(2048))
    assert real_named.search(QUERY)
    tally("corrupted index files", 1)


def test_index_replaces_a_damaged_onnx_export(real_named):
    _fake_export(real_named, b"")

    real_named.index()  # nothing changed in the corpus: only the export needs repair

    assert real_named.search(QUERY)
