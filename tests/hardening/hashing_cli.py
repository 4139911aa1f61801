"""`bekb` as users run it, but with the hashing test model: fast CLI subprocesses for tests.

Usage: python hashing_cli.py [bekb arguments...]   (exit code and output as `bekb`'s)

BEKB_TEST_EMBED_DELAY (seconds per text) slows the model down, for tests that interrupt a
build.

The real `bekb` loads the bundled sentence-transformers model; every other line of the CLI
(settings, commands, error mapping, exit codes) is the real one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli_support import hashing_app

from bekb.cli.app import run

if __name__ == "__main__":
    sys.exit(run(hashing_app(float(os.environ.get("BEKB_TEST_EMBED_DELAY") or 0))))
