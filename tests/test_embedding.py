"""Embedding: the ONNX query path matches sentence-transformers; the cache never re-embeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bekb import KnowledgeBase
from bekb.embedding.cache import EmbeddingCache, text_key
from bekb.embedding.model import resolve_model
from bekb.embedding.onnx import OnnxEmbedder, spread
from bekb.embedding.tokenizer import ModelTokenizer
from bekb.settings import DEFAULT_EMBED_MODEL


def test_the_default_model_resolves_to_the_bundled_copy():
    spec = resolve_model(DEFAULT_EMBED_MODEL)
    assert spec.path is not None and (spec.path / "tokenizer.json").exists()
    assert spec.fingerprint == resolve_model(DEFAULT_EMBED_MODEL).fingerprint


def test_an_unknown_model_name_has_no_local_folder():
    assert resolve_model("someone/not-installed").path is None


@pytest.fixture(scope="module")
def reference(cited_index, real_embedder) -> tuple[list[str], np.ndarray]:
    """120 chunk texts of the real cited index, short to long, and their vectors as
    sentence-transformers computes them."""
    kb = KnowledgeBase.open(cited_index)
    meta = kb.store.active()
    texts = spread([c.embed_text for c in kb.store.get_chunks(meta.collection)], 120)
    return texts, real_embedder.embed(texts)


@pytest.mark.slow  # long: runs in `make test-rest`
def test_onnx_export_agrees_with_sentence_transformers_on_corpus_chunks(cited_kb, reference):
    texts, expected = reference
    folder = cited_kb.models.export_folder(cited_kb.store.active().model_fingerprint)
    exported = OnnxEmbedder(folder).embed(texts)
    cosines = np.sum(exported * expected, axis=1)
    assert exported.shape == expected.shape == (len(texts), 384)
    assert float(cosines.min()) >= 0.999


def test_the_vectors_the_default_build_stored_are_the_sentence_transformers_ones(
    cited_kb, reference
):
    texts, expected = reference
    meta = cited_kb.store.active()
    cache = EmbeddingCache(cited_kb.settings.index_dir / "embeddings.sqlite")
    stored = cache.get_many(meta.model_fingerprint, [text_key(t) for t in texts], 384)
    cache.close()
    built = np.vstack([stored[text_key(t)] for t in texts])
    assert float(np.sum(built * expected, axis=1).min()) >= 0.999


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


def test_a_new_index_uses_the_machines_export_and_makes_none_of_its_own(
    cited_index, tiny_settings, monkeypatch
):
    from bekb.embedding import backends

    def no_export(*args: object, **kwargs: object) -> float:
        raise AssertionError("the session's export must be reused, not made again")

    monkeypatch.setattr(backends, "_make_export", no_export)
    kb = KnowledgeBase.open(tiny_settings)  # the real model, a new index dir
    kb.index()

    meta = kb.store.active()
    assert kb.models.export_folder(meta.model_fingerprint).parent == (
        tiny_settings.cache_folder / "onnx"
    )
    assert not (tiny_settings.index_dir / "onnx").exists()
    assert kb.status().query_backend == "onnx"
    assert kb.search("saga compensation", k=1)[0].path.startswith("alpha/skills/sagas/")


@pytest.mark.hardening  # two real exports' worth of waiting (make test-rest)
def test_two_builds_racing_for_the_first_export_make_it_once(tmp_path, monkeypatch):
    import threading

    from bekb.embedding import backends, template

    monkeypatch.setattr(template, "TEMPLATES", tmp_path / "no-templates")  # torch exports it
    calls: list[Path] = []
    real = backends.export_in_child

    def counted(spec, folder, samples):  # type: ignore[no-untyped-def]
        calls.append(folder)
        return real(spec, folder, samples)

    monkeypatch.setattr(backends, "export_in_child", counted)
    spec = resolve_model(DEFAULT_EMBED_MODEL)
    exports = tmp_path / "cache" / "onnx"
    loaded: list[object] = []

    def build() -> None:
        loaded.append(backends.ensure_export(spec, exports, ["a text to check the export on"]))

    racers = [threading.Thread(target=build) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=300)

    assert calls == [exports / spec.fingerprint]
    assert [type(model) for model in loaded] == [OnnxEmbedder, OnnxEmbedder]
