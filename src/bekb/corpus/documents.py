"""Indexed documents as readers see them: titles and descriptions, full text, line ranges."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath

from bekb.chunking.blocks import split_lines
from bekb.chunking.markdown import parse_frontmatter
from bekb.domain import FileRecord, Source
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
