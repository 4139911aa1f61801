"""Which model embeds what: chunks at index time and queries at search time, per the settings.

`index_backend` decides how chunks are embedded (the fp32 ONNX export, its int8
quantisation, or sentence-transformers in process); `query_backend` how queries are. The
vectors of the fp32 export are the model's own (checked), so they share the model's identity
and cache entries; int8 vectors are not, so they get an identity of their own.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from bekb.domain import IndexMeta
from bekb.embedding.model import Embedder, ModelSpec, SentenceTransformerEmbedder, resolve_model
from bekb.embedding.onnx import (
    CHECK_TEXTS,
    EXPORT_CHECK_SAMPLES,
    INT8_RECIPE,
    OnnxEmbedder,
    export_in_child,
    export_intact,
    index_sessions,
    load_export,
    quantize_onnx,
    spread,
)
from bekb.embedding.template import assemble_export
from bekb.errors import EmbeddingError
from bekb.settings import DEFAULT_EMBED_BATCH_SIZE

IndexBackend = Literal["onnx", "torch", "onnx-int8"]
QueryBackend = Literal["auto", "onnx", "torch"]
# Seconds a build waits for another process making the same export (one takes 10-20 s).
EXPORT_LOCK_TIMEOUT = 600.0
# Dynamic int8 quantises activations with one scale per batch, so batch-mates would move a
# text's vector (cos ~0.99); one text per call keeps it a function of the text, as the
# cache assumes, for ~15% of the speed.
INT8_BATCH = 1


@dataclass(frozen=True)
class BackendModelSpec(ModelSpec):
    """A model run by a backend whose vectors differ from the model's own (int8).

    It has its own fingerprint: the embedding cache, the index and the query-side ONNX
    folder never mix the two.
    """

    backend: str = "onnx-int8"

    @property
    def fingerprint(self) -> str:
        """The model's fingerprint, made distinct by the backend."""
        base = ModelSpec(self.name, self.path).fingerprint
        # The recipe is part of it: an index built by an earlier recipe keeps its own
        # export (its queries still load it) and the next build makes a new index.
        return hashlib.sha256(f"{base}|{self.backend}|{INT8_RECIPE}".encode()).hexdigest()[:16]


def index_model(spec: ModelSpec, backend: IndexBackend) -> ModelSpec:
    """The identity chunk vectors are filed under when `backend` embeds them.

    `onnx` runs the model's fp32 export, checked against sentence-transformers (cosine
    >= 0.999), so its vectors are the model's own: same identity as `torch`.
    """
    return spec if backend in ("torch", "onnx") else BackendModelSpec(spec.name, spec.path, backend)


def ensure_export(
    spec: ModelSpec,
    exports_dir: Path,
    samples: Sequence[str] = (),
    *,
    batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
    sessions: int = 1,
) -> OnnxEmbedder | None:
    """The model's ONNX export under `exports_dir` (int8 for a BackendModelSpec), loaded
    with `sessions` sessions (see OnnxEmbedder).

    A missing or damaged export is made now, checked on a spread of `samples` and
    CHECK_TEXTS, under a lock: builds that start at once make it once. Returns None when the
    fp32 model cannot be exported faithfully (then sentence-transformers serves it); an int8
    model that cannot be made raises.
    """
    folder = exports_dir / spec.fingerprint
    load = partial(load_export, folder, batch_size=batch_size, sessions=sessions)
    loaded = load()
    if loaded is not None or spec.path is None:  # the export needs the model's own files
        return loaded
    with _export_lock(exports_dir, spec.fingerprint):
        loaded = load()  # made while this one waited?
        if loaded is not None:
            return loaded
        if _make_export(spec, exports_dir, samples):
            return OnnxEmbedder(folder, batch_size=batch_size, sessions=sessions)
        return None


@contextlib.contextmanager
def _export_lock(exports_dir: Path, fingerprint: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    try:
        exports_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(exports_dir / f"{fingerprint}.lock"), timeout=EXPORT_LOCK_TIMEOUT)
        lock.acquire()
    except Timeout as exc:
        raise EmbeddingError(
            f"another bekb has been making the model export in {exports_dir} for "
            f"{EXPORT_LOCK_TIMEOUT:g}s; try again when it is done"
        ) from exc
    except OSError as exc:
        raise EmbeddingError(
            f"cannot use the model cache {exports_dir}: {exc.strerror or exc} "
            "(set cache_dir / BEKB_CACHE_DIR to a writable folder)"
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _make_export(spec: ModelSpec, exports_dir: Path, samples: Sequence[str]) -> bool:
    """Make the export of `spec` in `exports_dir`; False when fp32 cannot be made faithfully."""
    folder = exports_dir / spec.fingerprint
    if isinstance(spec, BackendModelSpec):
        base = ModelSpec(spec.name, spec.path)
        if ensure_export(base, exports_dir, samples) is None:
            raise EmbeddingError(f"model {spec.name!r} has no faithful ONNX export to quantise")
        quantize_onnx(exports_dir / base.fingerprint, folder)
        return True
    # bekb's template of the model's export, when it ships one, is ready in half a second;
    # torch (a child process) takes 6-7 s. A template that does not fit leaves it to torch.
    with contextlib.suppress(EmbeddingError):
        if assemble_export(spec, folder) is not None:
            return True
    try:
        export_in_child(spec, folder, [*spread(samples, EXPORT_CHECK_SAMPLES), *CHECK_TEXTS])
    except EmbeddingError:
        return False
    return True


def index_embedder(
    spec: ModelSpec,
    backend: IndexBackend,
    exports_dir: Path,
    samples: Sequence[str],
    *,
    batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
) -> Embedder:
    """The model that embeds chunks at index time, as `backend` runs it.

    `onnx` and `onnx-int8` use the model's export under `exports_dir` (made first if
    missing, checked on `samples`: texts the build embeds); queries then load the same
    folder. A model without a faithful fp32 export is run by sentence-transformers instead.
    """
    if backend == "torch":
        return SentenceTransformerEmbedder(spec, batch_size=batch_size)
    int8 = isinstance(spec, BackendModelSpec)
    # One-text batches leave a core idle in one session; batches of 8 keep both busy, and a
    # second fp32 session only costs memory (measured: same time, +270 MB).
    batch, sessions = (INT8_BATCH, index_sessions()) if int8 else (batch_size, 1)
    model = ensure_export(spec, exports_dir, samples, batch_size=batch, sessions=sessions)
    return model or SentenceTransformerEmbedder(spec, batch_size=batch)


class EmbeddingModels:
    """The models one knowledge base embeds with, loaded on first use and then kept.

    Exports live in `exports_dir` (the machine's cache, shared by every index); an index
    built before that kept its own in `legacy_exports`, which still serves its queries.
    `injected` (tests, or an application holding a loaded model) replaces the configured
    model for chunks and queries alike and is its own identity.
    """

    def __init__(
        self,
        *,
        embed_model: str,
        index_backend: IndexBackend,
        query_backend: QueryBackend,
        exports_dir: Path,
        legacy_exports: Path | None = None,
        batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        injected: Embedder | None = None,
    ) -> None:
        self.embed_model = embed_model
        self.index_backend = index_backend
        self.query_backend = query_backend
        self.exports_dir = exports_dir
        self.legacy_exports = legacy_exports
        self.batch_size = batch_size
        self.injected = injected
        self._for_chunks: dict[str, Embedder] = {}

    def index_identity(self) -> ModelSpec:
        """The model (and backend) a build files its vectors under."""
        spec = index_model(resolve_model(self.embed_model), self.index_backend)
        if self.injected is not None:
            return ModelSpec(self.injected.model_id, spec.path)
        return spec

    def tokenizer_model(self) -> ModelSpec:
        """The model whose tokenizer measures chunks (an injected model borrows the default's)."""
        return index_model(resolve_model(self.embed_model), self.index_backend)

    def for_chunks(self, spec: ModelSpec, texts: Sequence[str]) -> Embedder:
        """The model that embeds chunks, loaded once (watch mode reuses it); `texts` are what
        the build embeds, a sample of which checks a new export."""
        if self.injected is not None:
            return self.injected
        if spec.fingerprint not in self._for_chunks:
            self._for_chunks[spec.fingerprint] = index_embedder(
                spec, self.index_backend, self.exports_dir, texts, batch_size=self.batch_size
            )
        return self._for_chunks[spec.fingerprint]

    def ensure_query_export(self, spec: ModelSpec, samples: Callable[[], list[str]]) -> None:
        """Make the export queries embed with, once per model, if the build did not.

        A model ONNX cannot reproduce is still served, through sentence-transformers.
        """
        if self.query_backend == "torch" or spec.path is None or self.injected is not None:
            return
        if export_intact(self.exports_dir / spec.fingerprint):
            return
        with contextlib.suppress(EmbeddingError):
            ensure_export(spec, self.exports_dir, samples())

    def for_queries(self, meta: IndexMeta) -> Embedder:
        """The model that embeds queries against the index `meta` describes."""
        if self.injected is not None:
            return self.injected
        folder = self.export_folder(meta.model_fingerprint)
        if self.query_backend != "torch" and (folder / "meta.json").exists():
            # One thread per query: a question is a few dozen tokens, which one core embeds
            # as fast as two (measured), and parallel searches (the MCP server's) then
            # each get a core instead of fighting over both.
            model = load_export(folder, threads=1)
            if model is not None:
                return model
            if self.query_backend == "onnx":
                raise EmbeddingError(
                    f"the ONNX model in {folder} is damaged: run `bekb index` to make it again"
                )
            # auto: a damaged export still answers, through sentence-transformers
        if self.query_backend == "onnx":
            raise EmbeddingError(f"no ONNX export in {folder}: run `bekb index`")
        return SentenceTransformerEmbedder(resolve_model(meta.embed_model))

    def export_folder(self, fingerprint: str) -> Path:
        """Where the export of a model is read from: the machine cache, or the index's own
        folder for an index built before the cache."""
        folder = self.exports_dir / fingerprint
        if not export_intact(folder) and self.legacy_exports is not None:
            legacy = self.legacy_exports / fingerprint
            if export_intact(legacy):
                return legacy
        return folder

    def vectors_of(self, meta: IndexMeta) -> str:
        """How the index `meta` describes was embedded: `fp32` (the model's own vectors, from
        the `onnx` or `torch` backend), `onnx-int8`, `onnx-int8, an earlier recipe` or
        `injected`."""
        if self.injected is not None:
            return "injected"
        spec = resolve_model(meta.embed_model)
        if meta.model_fingerprint == spec.fingerprint:
            return "fp32"
        if meta.model_fingerprint == index_model(spec, "onnx-int8").fingerprint:
            return "onnx-int8"
        return "onnx-int8, an earlier recipe"

    def query_runtime(self, meta: IndexMeta) -> str:
        """How queries against `meta` are embedded: `onnx` or `sentence-transformers` (a
        damaged export is loaded and checked here, as a search would)."""
        if self.injected is not None:
            return "injected"
        folder = self.export_folder(meta.model_fingerprint)
        usable = self.query_backend != "torch" and load_export(folder) is not None
        return "onnx" if usable else "sentence-transformers"
