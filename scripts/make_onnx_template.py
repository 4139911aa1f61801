"""Write the ONNX template of an embedding model into src/bekb/data/onnx (see
bekb/embedding/template.py): the graph torch traces for it, without its weights.

Usage: .venv/bin/python scripts/make_onnx_template.py [--model NAME]

Run it when the default model, torch or the export recipe changes; tests/test_template.py
fails until the shipped template is the current one.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bekb.embedding.model import resolve_model
from bekb.embedding.onnx import CHECK_TEXTS, export_in_child
from bekb.embedding.template import TEMPLATES, write_template
from bekb.settings import DEFAULT_EMBED_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_EMBED_MODEL)
    args = parser.parse_args()
    spec = resolve_model(args.model)
    if spec.path is None:
        raise SystemExit(f"model {args.model!r} is not installed")
    with tempfile.TemporaryDirectory(prefix="bekb-template-") as tmp:
        export = Path(tmp) / "export"
        export_in_child(spec, export, list(CHECK_TEXTS))
        found = write_template(spec, export, TEMPLATES)
    print(f"wrote {found} and {found.with_suffix('.onnx').name}")


if __name__ == "__main__":
    main()
