"""A corpus N times the workspace in distinct text, for measuring bekb at scale.

Usage: .venv/bin/python scripts/scaled_corpus.py DEST --copies N

Every file the workspace scope of ../shared/corpus indexes is written N times under
DEST/copy-<i>/ (same paths, so the same selection rules pick them), each time with new text:
the lines keep their shape (headings, lists, tables, code fences, frontmatter keys,
indentation, word counts), and the words are drawn from a word-level Markov chain (order 2)
trained on the workspace's own prose and code. So chunk sizes, the vocabulary and the term
frequencies look like the real corpus, while no chunk repeats one another or the source:
every chunk is embedded anew, as in a corpus that really were N times larger.
"""

from __future__ import annotations

import argparse
import random
import re
from collections import defaultdict
from pathlib import Path

from benchlib import SHARED_CORPUS

Chain = dict[tuple[str, str], list[str]]
START = ("", "")
PREFIX = re.compile(r"^(\s*(?:#{1,6} |[-*+] |\d+\. |> |\|)?)(.*)$")


def workspace_files(root: Path = SHARED_CORPUS) -> list[str]:
    """What `bekb --scope workspace` indexes under `root` (without agent files to cite)."""
    from bekb.corpus.selection import select_files

    return list(select_files(root, agent_files=(), scope="workspace").files)


def train(root: Path, files: list[str]) -> tuple[Chain, Chain]:
    """Order-2 word chains of the prose lines and of the code lines of `files`."""
    prose: Chain = defaultdict(list)
    code: Chain = defaultdict(list)
    for rel in files:
        in_code = False
        for line in (root / rel).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lstrip().startswith("```"):
                in_code = not in_code
                continue
            words = PREFIX.match(line).group(2).split()  # type: ignore[union-attr]
            chain = code if in_code or not rel.endswith(".md") else prose
            state = START
            for word in words:
                chain[state].append(word)
                state = (state[1], word)
    return dict(prose), dict(code)


def words(chain: Chain, count: int, rng: random.Random) -> str:
    """`count` words walked from the chain (restarting at a line start when it runs dry)."""
    out: list[str] = []
    state = START
    while len(out) < count:
        following = chain.get(state)
        if not following:
            state = START
            following = chain[START]
        word = rng.choice(following)
        out.append(word)
        state = (state[1], word)
    return " ".join(out)


def rewrite(text: str, markdown: bool, chains: tuple[Chain, Chain], rng: random.Random) -> str:
    """`text` with the same line shapes and new words."""
    prose, code = chains
    out: list[str] = []
    in_code = not markdown
    in_front = False
    for number, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if markdown and stripped.startswith("```"):
            in_code = not in_code
            out.append(line)
            continue
        if markdown and stripped == "---" and (number == 0 or in_front):
            in_front = number == 0
            out.append(line)
            continue
        if not stripped:
            out.append(line)
            continue
        if in_front and ":" in line:
            key = line.split(":", 1)[0]
            out.append(f"{key}: {words(prose, max(1, len(line.split()) - 1), rng)}")
            continue
        match = PREFIX.match(line)
        assert match is not None
        prefix, body = match.groups()
        if prefix.strip() == "|":
            cells = body.split("|")
            out.append("| " + " | ".join(words(prose, max(1, len(c.split())), rng) for c in cells))
            continue
        indent = line[: len(line) - len(line.lstrip())]
        chain = code if in_code else prose
        out.append(f"{indent}{prefix.strip()} " if prefix.strip() else indent)
        out[-1] += words(chain, max(1, len(body.split())), rng)
    return "\n".join(out) + "\n"


def generate(
    dest: Path, copies: int, root: Path = SHARED_CORPUS, seed: int = 7, limit: int | None = None
) -> int:
    """Write `copies` rewritten copies of the workspace under `dest` (of its first `limit`
    files only, when given); returns the file count."""
    files = workspace_files(root)
    chains = train(root, files)
    files = files[:limit]
    written = 0
    for copy in range(copies):
        for rel in files:
            rng = random.Random(f"{seed}|{copy}|{rel}")
            source = (root / rel).read_text(encoding="utf-8", errors="replace")
            target = dest / f"copy-{copy}" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rewrite(source, rel.endswith(".md"), chains, rng), encoding="utf-8")
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    print(f"{generate(args.dest, args.copies)} files written under {args.dest}")


if __name__ == "__main__":
    main()
