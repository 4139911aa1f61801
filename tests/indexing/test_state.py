"""Planning an index run: every selected file sorted into new, changed, unchanged, deleted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bekb.domain import FileRecord, SkippedFile
from bekb.indexing.state import plan


def record(root: Path, rel: str, *, sha: str | None = None) -> FileRecord:
    data = (root / rel).read_bytes()
    stat = (root / rel).stat()
    digest = sha or hashlib.sha256(data).hexdigest()
    return FileRecord(rel, digest, stat.st_size, stat.st_mtime_ns, (f"{rel}#0",))


def test_plan_sorts_every_file_and_finds_deleted_ones(tmp_path: Path):
    for name, text in {"same.md": "a", "edited.md": "b", "new.md": "c", "touched.md": "d"}.items():
        (tmp_path / name).write_text(text)
    records = {
        "same.md": record(tmp_path, "same.md"),
        "edited.md": record(tmp_path, "edited.md", sha="0" * 64),
        "touched.md": record(tmp_path, "touched.md"),
        "gone.md": FileRecord("gone.md", "1" * 64, 1, 1, ("gone#0",)),
    }
    os.utime(tmp_path / "touched.md", ns=(1, 1))  # same content, new stat

    todo = plan(tmp_path, ["same.md", "edited.md", "new.md", "touched.md"], records)

    assert [f.source.path for f in todo.new] == ["new.md"]
    assert [f.source.path for f in todo.changed] == ["edited.md"]
    assert todo.unchanged == ["same.md", "touched.md"]
    assert todo.deleted == ["gone.md"]
    assert [s.path for s in todo.restat] == ["touched.md"]
    assert [f.text for f in todo.work] == ["c", "b"]


def test_trusting_the_stat_reads_no_file_whose_stat_matches(tmp_path: Path):
    (tmp_path / "a.md").write_text("a")
    stale = record(tmp_path, "a.md", sha="0" * 64)  # the hash is wrong, the stat right

    assert plan(tmp_path, ["a.md"], {"a.md": stale}, trust_stat=True).unchanged == ["a.md"]
    assert [f.source.path for f in plan(tmp_path, ["a.md"], {"a.md": stale}).changed] == ["a.md"]


def test_an_unreadable_file_keeps_its_record_and_is_reported(tmp_path: Path):
    (tmp_path / "bin.md").write_bytes(b"a\x00b")
    (tmp_path / "latin.md").write_bytes(b"caf\xe9")
    os.mkfifo(tmp_path / "pipe.md")
    records = {"bin.md": FileRecord("bin.md", "0" * 64, 3, 1, ("x",))}

    todo = plan(tmp_path, ["bin.md", "latin.md", "pipe.md"], records)

    assert todo.skipped == [
        SkippedFile("bin.md", "binary file (contains NUL bytes)"),
        SkippedFile("latin.md", "not valid UTF-8 (byte 3)"),
        SkippedFile("pipe.md", "not a regular file (a FIFO)"),
    ]
    assert (todo.unchanged, todo.new, todo.deleted) == (["bin.md"], [], [])
