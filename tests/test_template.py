"""The default model's ONNX export made from bekb's template: no torch, the model's vectors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env

from bekb.embedding import backends, template
from bekb.embedding.model import ModelSpec, resolve_model
from bekb.embedding.onnx import CHECK_TEXTS, OnnxEmbedder, export_in_child, load_export
from bekb.errors import EmbeddingError
from bekb.settings import DEFAULT_EMBED_MODEL

TEXTS = [
    *CHECK_TEXTS,
    "## Compensation\nEach step registers an undo action before it runs.",
    "SELECT id FROM orders WHERE status = 'pending' FOR UPDATE SKIP LOCKED;",
]


@pytest.fixture
def spec() -> ModelSpec:
    return resolve_model(DEFAULT_EMBED_MODEL)


def test_bekb_ships_the_template_of_the_installed_default_model(spec, real_embedder):
    found = template.template_for(spec)
    assert found is not None, "no template of this model: run scripts/make_onnx_template.py"
    checks = json.loads(found.read_text())["check"]
    assert [c["text"] for c in checks] == list(CHECK_TEXTS)
    stored = np.array([c["vector"] for c in checks], dtype=np.float32)
    assert float(np.sum(stored * real_embedder.embed(list(CHECK_TEXTS)), axis=1).min()) > 0.9999


def test_the_assembled_export_embeds_as_sentence_transformers(spec, real_embedder, tmp_path):
    worst = template.assemble_export(spec, tmp_path / "export")

    assembled = OnnxEmbedder(tmp_path / "export").embed(TEXTS)
    assert worst is not None and worst > 0.9999
    assert float(np.sum(assembled * real_embedder.embed(TEXTS), axis=1).min()) > 0.9999
    assert load_export(tmp_path / "export") is not None  # intact, probe recorded


def test_the_assembled_export_is_a_valid_onnx_model_with_every_weight(spec, tmp_path):
    import onnx

    template.assemble_export(spec, tmp_path / "export")

    model = onnx.load(str(tmp_path / "export" / "model.onnx"))
    onnx.checker.check_model(model)
    info = json.loads(template.template_for(spec).read_text())  # type: ignore[union-attr]
    assert {t.name for t in model.graph.initializer} == set(info["weights"])


@pytest.mark.slow  # a real torch export (make test-rest)
def test_the_assembled_export_is_the_torch_export_exactly(spec, tmp_path):
    export_in_child(spec, tmp_path / "torch", list(CHECK_TEXTS))
    template.assemble_export(spec, tmp_path / "template")

    traced = OnnxEmbedder(tmp_path / "torch").embed(TEXTS)
    assert np.array_equal(OnnxEmbedder(tmp_path / "template").embed(TEXTS), traced)


def test_a_first_build_makes_its_export_without_torch(tiny_settings, tmp_path):
    code = (
        "import sys; from bekb import KnowledgeBase, Settings\n"
        "kb = KnowledgeBase.open(Settings.load(**__import__('json').loads(sys.argv[1])))\n"
        "report = kb.index()\n"
        "print(report.embedded, 'torch' in sys.modules, kb.status().query_backend)\n"
    )
    settings = {
        "root": str(tiny_settings.root),
        "index_dir": str(tiny_settings.index_dir),
        "agent_files": list(tiny_settings.agent_files),
    }
    cache = tmp_path / "new-machine"
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(settings)],
        capture_output=True,
        text=True,
        env=subprocess_env(BEKB_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1"),
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    embedded, torch_imported, query_backend = done.stdout.split()
    assert (int(embedded) > 0, torch_imported, query_backend) == (True, "False", "onnx")
    (meta,) = [json.loads(m.read_text()) for m in (cache / "onnx").glob("*/meta.json")]
    assert meta["made"].startswith("from bekb's template")


def copy_of_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(template.TEMPLATES, copy)
    monkeypatch.setattr(template, "TEMPLATES", copy)
    return copy


def test_a_template_that_disagrees_with_the_model_is_left_to_torch(spec, tmp_path, monkeypatch):
    found = copy_of_templates(tmp_path, monkeypatch) / f"{spec.fingerprint}.json"
    info = json.loads(found.read_text())
    for check in info["check"]:
        check["vector"] = [-x for x in check["vector"]]
    found.write_text(json.dumps(info))
    torch_exports: list[Path] = []

    def torch_export(spec: ModelSpec, folder: Path, samples: list[str]) -> float:
        torch_exports.append(folder)
        raise EmbeddingError("no torch in this test")

    monkeypatch.setattr(backends, "export_in_child", torch_export)
    exports = tmp_path / "cache" / "onnx"

    with pytest.raises(EmbeddingError, match="export disagrees with the model"):
        template.assemble_export(spec, exports / spec.fingerprint)
    assert not (exports / spec.fingerprint).exists()
    assert backends.ensure_export(spec, exports, ["a text"]) is None  # torch was asked
    assert torch_exports == [exports / spec.fingerprint]


def test_weights_that_do_not_fit_the_template_are_one_error_line(spec, tmp_path, monkeypatch):
    found = copy_of_templates(tmp_path, monkeypatch) / f"{spec.fingerprint}.json"
    info = json.loads(found.read_text())
    info["weights"]["inner.embeddings.word_embeddings.weight"] = ["no.such.tensor", False]
    found.write_text(json.dumps(info))

    with pytest.raises(EmbeddingError, match="cannot assemble") as raised:
        template.assemble_export(spec, tmp_path / "export")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "export").exists()


def test_a_model_bekb_has_no_template_for_is_exported_by_torch(spec, tmp_path):
    other = ModelSpec("someone/other-model", spec.path)
    assert template.template_for(other) is None
    assert template.assemble_export(other, tmp_path / "export") is None
