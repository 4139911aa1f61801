"""The model's ONNX export: made in a child process, checked, quantised; run by onnxruntime.

Why an export at all: a process that imports torch pays 2-5 s and about 1 GB before its first
vector. The export is made once (in a child that exits and gives the memory back), checked
against sentence-transformers on real texts, and from then on chunks and queries are
embedded by onnxruntime and the model's tokenizer alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bekb.embedding.model import ModelSpec, SentenceTransformerEmbedder, Vectors
from bekb.errors import EmbeddingError, one_line
from bekb.files import atomic_folder
from bekb.settings import DEFAULT_EMBED_BATCH_SIZE

# Sessions an int8 build runs at once (one per core): one session on two cores leaves the
# second mostly idle on one-text batches (measured: 8.7 s against 9.4 s on one core for 400
# chunks; two one-core sessions took 4.7 s). Each holds its own copy of the weights, hence
# the cap.
MAX_INDEX_SESSIONS = 4
# Lowest cosine between an export and sentence-transformers for the export to be used.
FP32_MIN_COSINE = 0.999
# Lowest cosine between an int8 model and its fp32 export, on CHECK_TEXTS, for it to be used.
INT8_MIN_COSINE = 0.98
# The int8 recipe: a new one gives int8 models (and their indexes and cache entries) a new
# identity. v2 keeps the first layers' feed-forward outputs in fp32 (see kept_in_fp32).
INT8_RECIPE = "v2"
FP32_FEED_FORWARD_LAYERS = 2
# Corpus texts an export is checked on (besides CHECK_TEXTS): enough to cover short and
# long chunks, few enough that the check costs about a second.
EXPORT_CHECK_SAMPLES = 8
# Written with the export: this text's vector, checked whenever the export is loaded, so a
# model file damaged in place (same size, other bytes) is caught before it ranks anything.
PROBE_TEXT = "Compensate each completed saga step in reverse order when a later step fails."
PROBE_MIN_COSINE = 0.999
# Texts the exports are checked on besides the corpus's (prose, code, a heading trail).
CHECK_TEXTS = (
    "Saga Orchestration\nBest Practices > Do's\nMake step timeouts configurable per step type.",
    "How do I block until the read model has processed the command?",
    "def compensate(self, step):\n    for done in reversed(self.completed):\n        done.undo()",
    "CQRS separates the write model from read models optimised for queries.",
    "Use idempotency keys so a retried request is applied once.",
    "bekb",
)


def index_sessions() -> int:
    """Model sessions a build embeds with: one per core, at most MAX_INDEX_SESSIONS."""
    return max(1, min(MAX_INDEX_SESSIONS, os.cpu_count() or 1))


class OnnxEmbedder:
    """The same model from its ONNX export, run by onnxruntime: no torch, fast to start.

    Texts are run in batches of `batch_size`, grouped by length so that batches pad little.
    With `sessions` > 1 the batches are shared among that many sessions running at once
    (onnxruntime releases the GIL while it runs). `threads` is each session's; 0 gives one
    session every core and several sessions an even share of them.
    """

    def __init__(
        self,
        folder: Path,
        *,
        batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        threads: int = 0,
        sessions: int = 1,
    ) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer

            meta = json.loads((folder / "meta.json").read_text())
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            if threads == 0 and sessions > 1:
                threads = max(1, (os.cpu_count() or 1) // sessions)
            options.intra_op_num_threads = threads  # 0: onnxruntime's choice (every core)
            self._sessions = [
                onnxruntime.InferenceSession(
                    str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
                )
                for _ in range(sessions)
            ]
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load the ONNX model in {folder}: {one_line(exc)}"
            ) from exc
        self.meta: dict[str, Any] = meta
        self.folder = folder
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(int(meta["max_tokens"]))
        self._model_id = str(meta["model_id"])
        self._dimensions = int(meta["dimensions"])
        self._pooling = str(meta["pooling"])
        self._inputs = {i.name for i in self._sessions[0].get_inputs()}
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
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        share = max(1, min(len(self._sessions), len(batches)))

        def run_share(number: int) -> None:  # every share-th batch: shares of equal work
            for rows in batches[number::share]:
                out[rows] = self._run(self._sessions[number], [encodings[i] for i in rows])

        if share == 1:
            run_share(0)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(share) as pool:
                list(pool.map(run_share, range(share)))  # list(): re-raise a share's error
        if not np.isfinite(out).all():  # damaged weights give NaN, which ranks nothing right
            raise EmbeddingError(
                f"the ONNX export in {self.folder} gives non-finite vectors: it is damaged "
                "(run `bekb index` to make it again)"
            )
        return out

    def _run(self, session: Any, encodings: Sequence[Any]) -> Vectors:
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
        hidden = session.run(None, feeds)[0]
        return _pool(hidden, mask, self._pooling)


def _pool(hidden: Any, mask: Any, pooling: str) -> Vectors:
    if pooling == "cls":
        pooled = hidden[:, 0, :]
    else:
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


def load_export(
    folder: Path,
    *,
    batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
    threads: int = 0,
    sessions: int = 1,
) -> OnnxEmbedder | None:
    """The export in `folder`, loaded and checked, or None when it is missing or damaged.

    Checked: its files are whole (sizes); a model file written since the export (its mtime
    moved) still has the sha256 recorded then; and it gives the probe vector recorded then
    (an export from before these records only has to give a finite vector).
    """
    if not export_intact(folder):
        return None
    try:
        model = OnnxEmbedder(folder, batch_size=batch_size, threads=threads, sessions=sessions)
        probe = model.embed([PROBE_TEXT])[0]
    except EmbeddingError:
        return None
    recorded = model.meta.get("probe")
    if recorded is not None:
        expected = np.asarray(recorded, dtype=np.float32)
        if expected.shape != probe.shape or float(probe @ expected) < PROBE_MIN_COSINE:
            return None
    model.calls = 0
    return model


def record_probe(folder: Path, loaded: OnnxEmbedder | None = None) -> None:
    """Write what `load_export` checks into the export's meta.json: its own vector of
    PROBE_TEXT (from `loaded`, the export already loaded, when given), and the model file's
    sha256 and mtime."""
    meta = json.loads((folder / "meta.json").read_text())
    vector = (loaded or OnnxEmbedder(folder)).embed([PROBE_TEXT])[0]
    model = folder / "model.onnx"
    meta.update(
        probe=[round(float(x), 7) for x in vector],
        model_sha256=_sha256(model),
        model_mtime_ns=model.stat().st_mtime_ns,
    )
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))


def finish_export(
    folder: Path,
    meta: dict[str, Any],
    texts: Sequence[str],
    expected: Vectors,
    minimum: float,
    disagreement: str,
) -> float:
    """Check the export written in `folder` (model and tokenizer) against `expected`, the
    vectors `texts` should get, and complete it: meta.json with its lowest cosine, model
    size and probe. Returns that cosine; below `minimum` raises EmbeddingError
    "`disagreement` (cos …)"."""
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))  # the model loads it
    model = OnnxEmbedder(folder)
    worst = float(np.min(np.sum(expected * model.embed(list(texts)), axis=1)))
    meta.update(min_cosine=worst, model_bytes=(folder / "model.onnx").stat().st_size)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    if worst < minimum:
        raise EmbeddingError(f"{disagreement} (cos {worst:.4f})")
    record_probe(folder, model)
    return worst


def _same_model_file(folder: Path) -> bool:
    """Whether the model file is the one exported: by its mtime when that has not moved
    (free), by its sha256 when it has (a file written again, damaged in place)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if "model_sha256" not in meta:
            return True  # an export from before checksums: the probe alone checks it
        model = folder / "model.onnx"
        if model.stat().st_mtime_ns == meta.get("model_mtime_ns"):
            return True
        return bool(_sha256(model) == meta["model_sha256"])
    except (OSError, ValueError, KeyError):
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_intact(folder: Path) -> bool:
    """Whether `folder` holds a whole export as it was made: its files there and of their
    sizes, and the model file unchanged (by mtime; by sha256 when the mtime moved)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        whole = (folder / "model.onnx").stat().st_size == meta["model_bytes"]
        return whole and (folder / "tokenizer.json").is_file() and _same_model_file(folder)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def spread(texts: Sequence[str], count: int) -> list[str]:
    """At most `count` texts taken evenly across `texts`, shortest to longest."""
    ordered = sorted(texts, key=len)
    if len(ordered) <= count:
        return ordered
    step = (len(ordered) - 1) / (count - 1)
    return [ordered[round(i * step)] for i in range(count)]


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

    worst: list[float] = []

    def fill(tmp: Path) -> None:
        worst.append(_write_checked_export(embedder, Encoder().eval(), pooling, tmp, samples))

    atomic_folder(folder, fill)
    return worst[0]


def _write_checked_export(
    embedder: SentenceTransformerEmbedder,
    encoder: Any,
    pooling: str,
    tmp: Path,
    samples: Sequence[str],
) -> float:
    import torch

    assert embedder.spec.path is not None
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about constant-folded branches
        torch.onnx.export(
            encoder,
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
        "max_tokens": int(embedder.model.max_seq_length or 256),
    }
    sample = list(samples) or ["bekb"]
    return finish_export(
        tmp,
        meta,
        sample,
        embedder.embed(sample),
        FP32_MIN_COSINE,
        "ONNX export disagrees with sentence-transformers",
    )


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
    code = "from bekb.embedding.onnx import _export_main; _export_main()"
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
    worst: list[float] = []
    atomic_folder(folder, lambda tmp: worst.append(_write_quantized(source, tmp)))
    return worst[0]


def kept_in_fp32(model_file: Path) -> list[str]:
    """The MatMuls the int8 model keeps in fp32: the feed-forward output projections of the
    first FP32_FEED_FORWARD_LAYERS layers (node names of a torch-exported BERT layout).

    Why: their inputs (GELU outputs) carry the outliers that one dynamic activation scale
    per text flattens. Measured on 800 workspace chunks against the fp32 export: quantising
    every MatMul gives mean cosine 0.9941 (1st percentile 0.9898) and 0.90 of the top-10
    neighbours of 300 chunk-derived queries; keeping these two in fp32 gives 0.9960
    (0.9937) and 0.92 for no measurable speed (docs/benchmarks.md, "int8 or fp32").
    """
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    wanted = tuple(f"/layer.{n}/output/dense/MatMul" for n in range(FP32_FEED_FORWARD_LAYERS))
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith(wanted)]


def _write_quantized(source: Path, tmp: Path) -> float:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32_nodes = kept_in_fp32(source / "model.onnx")
        with _quiet_root_logger():  # it suggests a pre-processing pass we do not need
            quantize_dynamic(
                source / "model.onnx",
                tmp / "model.onnx",
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=fp32_nodes,
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
    except Exception as exc:
        raise EmbeddingError(f"cannot quantise {source / 'model.onnx'}: {one_line(exc)}") from exc
    shutil.copyfile(source / "tokenizer.json", tmp / "tokenizer.json")
    meta = json.loads((source / "meta.json").read_text())
    meta.update(
        quantization=f"int8 ({INT8_RECIPE}): MatMul weights per channel, dynamic activations",
        fp32_nodes=fp32_nodes,
        source=source.name,
    )
    reference = OnnxEmbedder(source).embed(CHECK_TEXTS)
    return finish_export(
        tmp, meta, CHECK_TEXTS, reference, INT8_MIN_COSINE, "the int8 model disagrees with fp32"
    )


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
