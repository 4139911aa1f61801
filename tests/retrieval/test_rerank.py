"""Optional cross-encoder rerank: configured by path, it re-orders the fused candidates."""

from __future__ import annotations

import pytest

from bekb import EmbeddingError, KnowledgeBase
from bekb.embedding.model import resolve_model
from bekb.settings import DEFAULT_EMBED_MODEL


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    """A cross-encoder built offline from the bundled MiniLM (untrained head: mechanics only)."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(str(resolve_model(DEFAULT_EMBED_MODEL).path), num_labels=1, device="cpu")
    folder = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(folder))
    return folder


def test_configured_reranker_orders_hits_by_its_own_scores(
    tiny_settings, hashing_embedder, cross_encoder_dir
):
    from sentence_transformers import CrossEncoder

    plain = KnowledgeBase.open(tiny_settings, embedder=hashing_embedder)
    plain.index()
    reranked = KnowledgeBase.open(
        tiny_settings, embedder=hashing_embedder, rerank_model=str(cross_encoder_dir)
    )
    query = "saga compensation timeouts"
    hits = reranked.search(query, k=3)

    judge = CrossEncoder(str(cross_encoder_dir), device="cpu")
    candidates = plain.search(query, k=20)
    expected = sorted(
        zip(judge.predict([(query, h.text) for h in candidates]), candidates, strict=True),
        key=lambda pair: -pair[0],
    )[:3]
    assert [(h.path, h.start_line) for h in hits] == [(h.path, h.start_line) for _, h in expected]
    assert [h.explain.rerank for h in hits] == pytest.approx(
        [float(s) for s, _ in expected], abs=1e-5
    )
    fused = {(h.path, h.start_line): h.explain.fused for h in candidates}
    assert [h.explain.fused for h in hits] == [fused[(h.path, h.start_line)] for h in hits]


def test_a_missing_rerank_model_is_a_clear_error(tiny_settings, hashing_embedder, tmp_path):
    kb = KnowledgeBase.open(
        tiny_settings, embedder=hashing_embedder, rerank_model=str(tmp_path / "no-such-model")
    )
    kb.index()
    with pytest.raises(EmbeddingError, match="cannot load rerank model"):
        kb.search("sagas")
