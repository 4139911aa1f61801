"""The embedding cache: vectors on disk by (model fingerprint, text hash), never embedded twice;
and beside them what else a build derives from a chunk and must not derive again (its
keyword terms), as opaque bytes by (kind, key)."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bekb.embedding.model import Vectors
from bekb.errors import IndexStateError, one_line


class EmbeddingCache:
    """Vectors on disk keyed by (model fingerprint, sha256 of the text): never embed twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:
            self._recreate()

    def _recreate(self) -> None:
        """Start the cache afresh: a damaged cache (or a foreign table) only costs
        recomputing its vectors, never a failed build."""
        with contextlib.suppress(Exception):
            self._db.close()
        for stale in (
            self.path,
            self.path.with_name(self.path.name + "-wal"),
            self.path.with_name(self.path.name + "-shm"),
        ):
            stale.unlink(missing_ok=True)
        try:
            self._db = self._open()
        except sqlite3.Error as exc:
            raise IndexStateError(
                f"cannot create the embedding cache {self.path}: {one_line(exc)}"
            ) from exc

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, text_sha TEXT, vector BLOB, "
            "PRIMARY KEY (model, text_sha)) WITHOUT ROWID"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS derived (kind TEXT, key TEXT, value BLOB, "
            "PRIMARY KEY (kind, key)) WITHOUT ROWID"
        )
        db.execute("SELECT model, text_sha, vector FROM vectors LIMIT 1").fetchall()
        db.execute("SELECT kind, key, value FROM derived LIMIT 1").fetchall()
        return db

    def get_many(self, model: str, keys: Sequence[str], dimensions: int) -> dict[str, Vectors]:
        """The cached vectors among `keys` (sha256 hex of texts)."""
        found: dict[str, Vectors] = {}
        with self._errors("read", retry=False):
            for batch in _batches(list(keys), 500):
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    "SELECT text_sha, vector FROM vectors "
                    f"WHERE model = ? AND text_sha IN ({marks})",
                    [model, *batch],
                ).fetchall()
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    # A damaged row (wrong size, not finite, not unit length) counts as missing:
                    # it is recomputed rather than served.
                    if (
                        vector.shape == (dimensions,)
                        and abs(float(np.linalg.norm(vector)) - 1) < 1e-3
                    ):
                        found[key] = vector
        return found

    def put_many(self, model: str, items: dict[str, Vectors]) -> None:
        """Store vectors by text hash (one transaction)."""
        rows = [(model, key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()]
        self._write("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)

    def get_derived(self, kind: str, keys: Sequence[str]) -> dict[str, bytes]:
        """What was stored under `kind` for each of `keys` that has it."""
        return {key: bytes(value) for key, value in self._derived("key, value", kind, keys)}

    def get_derived_keys(self, kind: str, keys: Sequence[str]) -> set[str]:
        """Which of `keys` have something stored under `kind` (values not read)."""
        return {key for (key,) in self._derived("key", kind, keys)}

    def _derived(self, columns: str, kind: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        with self._errors("read", retry=False):
            for batch in _batches(list(keys), 500):
                marks = ",".join("?" * len(batch))
                rows += self._db.execute(
                    f"SELECT {columns} FROM derived WHERE kind = ? AND key IN ({marks})",
                    [kind, *batch],
                ).fetchall()
        return rows

    def put_derived(self, kind: str, items: dict[str, bytes]) -> None:
        """Store values under `kind` by key (one transaction)."""
        rows = [(kind, key, value) for key, value in items.items()]
        self._write("INSERT OR REPLACE INTO derived VALUES (?, ?, ?)", rows)

    def _write(self, statement: str, rows: list[tuple[str, str, bytes]]) -> None:
        """`statement` for every row in one transaction; once more into a recreated file."""
        try:
            with self._errors("write", retry=True), self._transaction():
                self._db.executemany(statement, rows)
        except _Recreated:
            with self._errors("write", retry=False), self._transaction():
                self._db.executemany(statement, rows)

    @contextlib.contextmanager
    def _errors(self, action: str, *, retry: bool) -> Iterator[None]:
        """SQLite errors as IndexStateError; a damaged file is recreated instead (then a
        read finds nothing, and a write raises _Recreated for the caller to retry once)."""
        try:
            yield
        except sqlite3.OperationalError as exc:  # a full disk, a file removed under us
            raise IndexStateError(
                f"cannot {action} the embedding cache {self.path}: {one_line(exc)}"
            ) from exc
        except sqlite3.DatabaseError as exc:  # "database disk image is malformed"
            self._recreate()
            if retry:
                raise _Recreated from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class _Recreated(Exception):
    """The cache file was damaged and has been made anew."""


def text_key(text: str) -> str:
    """The cache key of a text."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
