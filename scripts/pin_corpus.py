"""Write the corpus lock file (repositories, commits, cited files' sha256) from a workspace root.

Example:
    python scripts/pin_corpus.py --root ../shared/corpus
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Runs from a checkout too, before `pip install -e .`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bekb.corpus.manifest import build_lock, save_lock
from bekb.errors import CorpusError

DEFAULT_AGENT = "specialists/backend-specialist.md"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "corpus" / "sources.lock.json"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, pin the corpus, print a one-line summary; exit 1 on a corpus error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="workspace root to pin")
    parser.add_argument(
        "--agent",
        action="append",
        dest="agents",
        help=f"agent file relative to the root (repeatable; default {DEFAULT_AGENT})",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="lock file to write")
    args = parser.parse_args(argv)
    try:
        lock = build_lock(args.root, args.agents or [DEFAULT_AGENT])
        save_lock(lock, args.out)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(file.size for file in lock.files)
    repos = len({file.repo for file in lock.files})
    print(f"pinned {len(lock.files)} files ({size} bytes) from {repos} repositories to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
