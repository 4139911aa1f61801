"""`bekb` as users run it, but with the hashing test model: fast CLI subprocesses for tests.

Usage: python hashing_cli.py [bekb arguments...]   (exit code and output as `bekb`'s)

The real `bekb` loads the bundled sentence-transformers model; every other line of the CLI
(settings, commands, error mapping, exit codes) is the real one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import HashingEmbedder

import bekb.cli.app as cli_app


def _open_kb(ctx: Any, **flags: Any) -> Any:
    from bekb import KnowledgeBase, Settings

    settings = Settings.load(**{**(ctx.obj or {}), **flags})
    return KnowledgeBase.open(settings, embedder=HashingEmbedder())


if __name__ == "__main__":
    cli_app.open_kb = _open_kb  # before main() imports the command modules that bind it
    cli_app.main()
