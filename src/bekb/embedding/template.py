"""A model's fp32 ONNX export made without torch: a graph shipped with bekb, filled with the
weights of the installed model.

Why by hand: torch is the only exporter (optimum and torch.onnx both trace the model), and a
machine's first build waited for it in a child process (importing torch and
sentence-transformers, loading, tracing, checking: 6-7 s) before it could embed anything.
What torch traces does not depend on the installation, only the weights' values do. So
`write_template` strips the weights out of a torch export and records which tensor of
`model.safetensors` (transposed or not) each one was, with the model's own vectors
(sentence-transformers) of CHECK_TEXTS; `assemble_export` puts the installed weights back
(half a second) and checks the result on those vectors. A model without a template is
exported by torch, as before (onnx.export_in_child).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from bekb.embedding.model import ModelSpec, SentenceTransformerEmbedder
from bekb.embedding.onnx import CHECK_TEXTS, FP32_MIN_COSINE, finish_export
from bekb.errors import EmbeddingError, one_line
from bekb.files import atomic_folder

# Templates shipped with bekb, one pair per model fingerprint: <fingerprint>.onnx (the graph,
# no weights) and <fingerprint>.json (where each weight comes from, the check vectors).
TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "onnx"
WEIGHTS_FILE = "model.safetensors"


def template_for(spec: ModelSpec) -> Path | None:
    """The template's JSON file for `spec`, when bekb ships one and the model has its
    weights in safetensors form."""
    found = TEMPLATES / f"{spec.fingerprint}.json"
    usable = spec.path is not None and (spec.path / WEIGHTS_FILE).is_file()
    return found if usable and found.is_file() else None


def assemble_export(spec: ModelSpec, folder: Path) -> float | None:
    """Make the fp32 export of `spec` in `folder` from its template; returns its lowest
    cosine to the model's own vectors, or None when there is no template.

    Raises EmbeddingError when the weights do not fit the template or the result disagrees
    with the model (then `folder` is left as it was, and torch can export it instead).
    """
    found = template_for(spec)
    if found is None:
        return None
    worst: list[float] = []
    atomic_folder(folder, lambda tmp: worst.append(_assemble(spec, found, tmp)))
    return worst[0]


def _assemble(spec: ModelSpec, found: Path, tmp: Path) -> float:
    from safetensors.numpy import load_file

    assert spec.path is not None
    try:
        info = json.loads(found.read_text())
        weights = load_file(str(spec.path / WEIGHTS_FILE))
        with (tmp / "model.onnx").open("wb") as model:
            model.write(found.with_suffix(".onnx").read_bytes())
            for name, (key, transposed) in info["weights"].items():
                array = weights[key].T if transposed else weights[key]
                _append_initializer(model, name, np.ascontiguousarray(array, dtype="<f4"))
        shutil.copyfile(spec.path / "tokenizer.json", tmp / "tokenizer.json")
        texts = [check["text"] for check in info["check"]]
        expected = np.array([check["vector"] for check in info["check"]], dtype=np.float32)
    except Exception as exc:  # a damaged template or model: torch can still export it
        raise EmbeddingError(
            f"cannot assemble the ONNX export of {spec.name!r}: {one_line(exc)}"
        ) from exc
    keys = ("model_id", "dimensions", "pooling", "max_tokens")
    meta: dict[str, Any] = {key: info[key] for key in keys}
    meta["made"] = "from bekb's template of the torch export"
    return finish_export(
        tmp, meta, texts, expected, FP32_MIN_COSINE, "the assembled export disagrees with the model"
    )


# Why protobuf by hand: the `onnx` package's import (its C++ extension) alone took a third of
# the assembly (0.55 of 1.6 s), and a protobuf parser merges a message field that occurs
# twice, so a graph field holding only initializers, written after the template's own
# ModelProto bytes, adds them to its graph. A TensorProto needs four fields for that.
_GRAPH = 7  # ModelProto.graph
_INITIALIZER = 5  # GraphProto.initializer
_DIMS, _DATA_TYPE, _NAME, _RAW_DATA = 1, 2, 8, 9  # TensorProto fields
_FLOAT = 1  # TensorProto.DataType.FLOAT


def _append_initializer(model: BinaryIO, name: str, array: np.ndarray) -> None:
    """Write `array` (little-endian float32) as the initializer `name` of the graph."""
    head = b"".join(_varint_field(_DIMS, dim) for dim in array.shape)
    head += _varint_field(_DATA_TYPE, _FLOAT) + _bytes_field(_NAME, name.encode())
    head += _key(_RAW_DATA, 2) + _varint(array.nbytes)
    tensor_size = len(head) + array.nbytes
    initializer = _key(_INITIALIZER, 2) + _varint(tensor_size)
    model.write(_key(_GRAPH, 2) + _varint(len(initializer) + tensor_size) + initializer + head)
    model.write(array.data.cast("B"))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _varint_field(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes_field(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def write_template(spec: ModelSpec, export: Path, out: Path) -> Path:
    """Write the template of `spec` to `out` from its torch export in `export`; returns
    the JSON file. Every weight of the export must be a tensor of model.safetensors, as it
    is or transposed (what torch makes of a Linear layer's weight)."""
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    assert spec.path is not None
    model = onnx.load(str(export / "model.onnx"))
    weights = load_file(str(spec.path / WEIGHTS_FILE))
    sources: dict[str, tuple[str, bool]] = {}
    for tensor in model.graph.initializer:
        sources[tensor.name] = _source_of(numpy_helper.to_array(tensor), tensor.name, weights)
    del model.graph.initializer[:]
    meta = json.loads((export / "meta.json").read_text())
    vectors = SentenceTransformerEmbedder(spec).embed(list(CHECK_TEXTS))
    info = {
        "model_id": meta["model_id"],
        "dimensions": meta["dimensions"],
        "pooling": meta["pooling"],
        "max_tokens": meta["max_tokens"],
        "weights": sources,
        "check": [
            {"text": text, "vector": [round(float(x), 8) for x in vector]}
            for text, vector in zip(CHECK_TEXTS, vectors, strict=True)
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / f"{spec.fingerprint}.onnx"))
    found = out / f"{spec.fingerprint}.json"
    found.write_text(json.dumps(info, indent=1) + "\n")
    return found


def _source_of(array: np.ndarray, name: str, weights: dict[str, np.ndarray]) -> tuple[str, bool]:
    """The safetensors key holding `array` (by the export's name when it kept it, else by
    value), and whether it is stored transposed."""
    named = name.split(".", 1)[-1] if name.startswith("inner.") else name
    if named in weights and np.array_equal(weights[named], array):
        return named, False
    for key, value in weights.items():
        if value.shape == array.T.shape and array.ndim == 2 and np.array_equal(value.T, array):
            return key, True
        if value.shape == array.shape and np.array_equal(value, array):
            return key, False
    raise EmbeddingError(f"the export's weight {name!r} is no tensor of {WEIGHTS_FILE}")
