"""Single-writer lock on the index directory (released by the OS if the writer dies)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from bekb.errors import IndexLockedError, IndexStateError

LOCK_NAME = "write.lock"


def not_a_folder(index_dir: Path) -> str:
    """What to say when a file stands where the index dir should be."""
    return (
        f"the index dir {index_dir} is not a folder (a file is in the way): "
        "move it, or pass another --index-dir"
    )


@contextlib.contextmanager
def index_write_lock(
    index_dir: Path, timeout: float, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the index write lock, waiting up to `timeout` seconds for another writer
    (`on_wait(message)` is told once when there is one)."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise IndexStateError(not_a_folder(index_dir)) from exc
    except OSError as exc:
        raise IndexStateError(
            f"cannot create the index dir {index_dir}: {exc.strerror or exc}"
        ) from exc
    lock = FileLock(str(index_dir / LOCK_NAME), timeout=timeout)
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if timeout <= 0:
                raise
            if on_wait is not None:
                on_wait(
                    f"waiting for another `bekb index`, which holds {index_dir / LOCK_NAME} "
                    f"(up to {timeout:g}s)"
                )
            lock.acquire()
    except Timeout as exc:
        raise IndexLockedError(
            f"another `bekb index` holds {index_dir / LOCK_NAME}; gave up after {timeout:g}s "
            "(wait for it, or raise --lock-timeout)"
        ) from exc
    except OSError as exc:  # a read-only index dir: the lock file cannot be made
        raise IndexStateError(
            f"cannot take the write lock {index_dir / LOCK_NAME}: {exc.strerror or exc}"
        ) from exc
    try:
        yield
    finally:
        lock.release()
