"""Single-writer lock on the index directory (released by the OS if the writer dies)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from bekb.errors import IndexLockedError

LOCK_NAME = "write.lock"


@contextlib.contextmanager
def index_write_lock(index_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the index write lock, waiting up to `timeout` seconds for another writer."""
    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(index_dir / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise IndexLockedError(
            f"another `bekb index` holds {index_dir / LOCK_NAME}; gave up after {timeout:g}s "
            "(wait for it, or raise --lock-timeout)"
        ) from exc
    try:
        yield
    finally:
        lock.release()
