"""Embedding: the ONNX query path matches sentence-transformers; the cache never re-embeds."""

from __future__ import annotations

import numpy as np
import pytest

from bekb import KnowledgeBase
from bekb.embedding.cache import EmbeddingCache, text_key
from bekb.embedding.model import resolve_model
from bekb.embedding.onnx import OnnxEmbedder
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.settings import DEFAULT_EMBED_MODEL


def test_the_default_model_resolves_to_the_bundled_copy():
    spec = resolve_model(DEFAULT_EMBED_MODEL)
    assert spec.path is not None and (spec.path / "tokenizer.json").exists()
    assert spec.fingerprint == resolve_model(DEFAULT_EMBED_MODEL).fingerprint


def test_an_unknown_model_name_has_no_local_folder():
    assert resolve_model("someone/not-installed").path is None


def test_onnx_export_agrees_with_sentence_transformers_on_corpus_chunks(cited_kb, real_embedder):
    meta = cited_kb.store.active()
    folder = cited_kb.settings.index_dir / "onnx" / meta.model_fingerprint
    texts = [c.embed_text for c in cited_kb.store.get_chunks(meta.collection)[:200]]
    exported = OnnxEmbedder(folder).embed(texts)
    reference = real_embedder.embed(texts)
    cosines = np.sum(exported * reference, axis=1)
    assert exported.shape == reference.shape == (len(texts), 384)
    assert float(cosines.min()) >= 0.999


def test_the_vectors_the_default_build_stored_are_the_sentence_transformers_ones(
    cited_kb, real_embedder
):
    meta = cited_kb.store.active()
    texts = [c.embed_text for c in cited_kb.store.get_chunks(meta.collection)[:200]]
    cache = EmbeddingCache(cited_kb.settings.index_dir / "embeddings.sqlite")
    stored = cache.get_many(meta.model_fingerprint, [text_key(t) for t in texts], 384)
    cache.close()
    built = np.vstack([stored[text_key(t)] for t in texts])
    cosines = np.sum(built * real_embedder.embed(texts), axis=1)
    assert float(cosines.min()) >= 0.999


def test_a_cached_vector_that_is_not_unit_length_counts_as_missing(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    cache.put_many("m", {"k": np.arange(4, dtype=np.float32)})
    assert cache.get_many("m", ["k"], 4) == {}


def test_the_cache_returns_exactly_what_was_stored(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    vector = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    cache.put_many("model-a", {text_key("hello"): vector})
    assert list(cache.get_many("model-a", [text_key("hello")], 4)) == [text_key("hello")]
    assert np.array_equal(
        cache.get_many("model-a", [text_key("hello")], 4)[text_key("hello")], vector
    )
    assert cache.get_many("model-b", [text_key("hello")], 4) == {}  # keyed by model too
    assert cache.get_many("model-a", [text_key("hello")], 8) == {}  # wrong size = missing


def test_a_corrupt_cache_file_is_replaced_not_fatal(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = EmbeddingCache(path)
    assert cache.get_many("m", ["k"], 4) == {}
    cache.put_many("m", {"k": np.full(4, 0.5, dtype=np.float32)})
    assert list(cache.get_many("m", ["k"], 4)) == ["k"]


@pytest.mark.parametrize("limit", [1, 5, 50])
def test_token_split_pieces_join_back_and_fit(limit):
    counter = ModelTokenizer.for_model(resolve_model(DEFAULT_EMBED_MODEL))
    text = "Sagas coordinate distributed transactions: compensate_each_step() in reverse. " * 20
    pieces = counter.split(text, limit)
    assert "".join(pieces) == text
    assert all(n <= limit + 1 for n in counter.count(pieces))


def test_indexing_twice_with_the_real_model_embeds_nothing_the_second_time(
    tiny_settings, real_embedder
):
    kb = KnowledgeBase.open(tiny_settings, embedder=real_embedder)
    first = kb.index()
    calls = real_embedder.calls
    second = kb.index()
    assert first.embedded == first.chunks > 0
    assert (second.embedded, real_embedder.calls) == (0, calls)
