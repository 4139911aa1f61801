"""Indexed documents as readers see them: titles and descriptions, full text, line ranges."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from bekb.chunking.blocks import split_lines
from bekb.chunking.markdown import parse_frontmatter
from bekb.domain import Excerpt, FileRecord, Source
from bekb.errors import CorpusError, UsageError
from bekb.files import FileBytes, Unreadable, inside, read_regular, read_text

# Bytes of a document read for its title and description.
HEAD_BYTES = 4000


def list_sources(root: Path, records: Mapping[str, FileRecord]) -> list[Source]:
    """Each indexed file with its title (frontmatter name, else the file stem) and
    description, sorted by path. A file that is gone or unreadable keeps the stem."""
    out = []
    for path, record in sorted(records.items()):
        title, description = PurePosixPath(path).stem, ""
        got = read_regular(root, path)
        if isinstance(got, FileBytes):
            head = got.data[:HEAD_BYTES].decode("utf-8", errors="ignore")
            front = parse_frontmatter(split_lines(head))
            if front is not None:
                title = front.name or title
                description = front.description
        out.append(Source(path, title, description, len(record.chunk_ids)))
    return out


def read_document(root: Path, path: str, indexed: Collection[str]) -> str:
    """The full text of an indexed file.

    Raises:
        UsageError: the path is not an indexed file, or now leads out of the root.
        CorpusError: the file can no longer be read as UTF-8 text (changed since indexing).
    """
    if path not in indexed:
        raise UsageError(f"{path!r} is not an indexed file")
    if inside(root, path) is None:  # swapped for a link out of the root since indexing
        raise UsageError(f"{path!r} is outside the workspace root")
    got = read_text(root, path)
    if isinstance(got, Unreadable):
        raise CorpusError(f"cannot read {path}: {got.reason} (changed since indexing?)")
    return got


# How the MCP server names a document as a resource: `bekb://<path>`.
RESOURCE_SCHEME = "bekb://"
# `path:12` or `path:12-30`, as hits and citations print.
_LOCATION = re.compile(r"(?P<path>.+?):(?P<start>\d+)(?:-(?P<end>\d+))?")
# `path#Heading > Sub (lines 12-30)`, the label --json carries.
_LABEL = re.compile(r"(?P<path>.+) \(lines (?P<start>\d+)-(?P<end>\d+)\)")


def excerpt(
    root: Path,
    reference: str,
    indexed: Collection[str] | None = None,
    *,
    start_line: int | None = None,
    end_line: int | None = None,
) -> Excerpt:
    """Lines of a file under `root`, named the way bekb prints a passage: `path`,
    `path:12`, `path:12-30`, a `label` (`path#Heading (lines 12-30)`), each with the path
    relative to the root or absolute (or a `file://` URI) inside it, or a resource URI
    (`bekb://path`). With `indexed`, only
    those files are read. `start_line` and `end_line` replace the range the reference
    names; given alone, the other end is the file's.

    Raises:
        UsageError: no such file under the root, a path outside it (or not in `indexed`),
            or a range outside the file.
        CorpusError: the file cannot be read as text.
    """
    path, start, end = _parse_reference(root, reference.strip())
    rel = _relative(root, path)
    if indexed is not None and rel not in indexed:
        raise UsageError(f"{rel!r} is not an indexed file")
    got = read_text(root, rel)
    if isinstance(got, Unreadable):
        if not (root / rel).exists():
            raise UsageError(f"no file {rel!r} under the workspace root")
        raise CorpusError(f"cannot read {rel}: {got.reason}")
    # Numbered as chunks are (only \n ends a line), so a cited range is the lines it cites
    # in a file holding form feeds or U+2028; a CRLF file's \r is not shown.
    lines = [line.rstrip("\r\n") for line in split_lines(got)]
    total = len(lines)
    first, last = (start, end or start) if start is not None else (1, total)
    if start_line is not None or end_line is not None:
        first = 1 if start_line is None else start_line
        last = total if end_line is None else end_line
    if total == 0 and start is None and start_line is None and end_line is None:
        return Excerpt(rel, 1, 0, "", 0)  # the whole of an empty file: no lines
    if not 1 <= first <= total:
        raise UsageError(f"line {first} is outside {rel} ({total} lines)")
    if last < first:
        raise UsageError(f"lines {first}-{last} run backwards: give the first line first")
    if last > total:
        raise UsageError(f"lines {first}-{last} are outside {rel} ({total} lines)")
    text = "".join(line + "\n" for line in lines[first - 1 : last])
    return Excerpt(rel, first, last, text, total)


def _parse_reference(root: Path, reference: str) -> tuple[str, int | None, int]:
    if reference.startswith("file://"):
        reference = unquote(urlparse(reference).path)
    elif reference.startswith(RESOURCE_SCHEME):  # the MCP server's resource URI
        reference = unquote(reference.removeprefix(RESOURCE_SCHEME))
    if not reference:
        raise UsageError("give a path, e.g. skills/x/SKILL.md:10-20")
    for pattern in (_LABEL, _LOCATION):
        match = pattern.fullmatch(reference)
        if match and not (root / reference).is_file():  # a file may have `:3` in its name
            start = int(match["start"])
            end = int(match["end"]) if match["end"] else start
            path = match["path"]
            return (_label_path(root, path) if pattern is _LABEL else path), start, end
    return reference, None, 0


def _label_path(root: Path, head: str) -> str:
    """The file of a label's `path#Heading`: the longest part before a `#` that is a file
    under `root` (a name may hold `#` itself, `C#.md`), else the part before the first."""
    cuts = [i for i, ch in enumerate(head) if ch == "#"] + [len(head)]
    for cut in reversed(cuts):
        if (root / head[:cut]).is_file():
            return head[:cut]
    return head[: cuts[0]]


def _relative(root: Path, path: str) -> str:
    """`path` relative to the root; absolute paths must lie inside it."""
    candidate = Path(path)
    if candidate.is_absolute():
        for base in (root, root.resolve()):
            if candidate.is_relative_to(base):
                candidate = candidate.relative_to(base)
                break
        else:
            raise UsageError(f"{path} is outside the workspace root {root}")
    rel = candidate.as_posix()
    if inside(root, rel) is None:
        raise UsageError(f"{path} is outside the workspace root {root}")
    return rel
