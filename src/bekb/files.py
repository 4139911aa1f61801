"""Files on disk: reading a workspace file safely, and writing files and folders atomically.

Everything under the workspace root comes from third-party repositories: a name ending in
`.md` may be a FIFO (a read blocks forever), a device (a read never ends) or a symlink out of
the root. `read_regular` is the one way bekb reads such a file; `atomic_*` are the one way it
writes what readers must never see half-written.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# np.load parses each .npy header with ast.literal_eval, and CPython 3.11's AST conversion
# keeps a recursion counter that is not thread-safe: readers loading a new generation at once
# fail with "SystemError: AST constructor recursion depth mismatch". One load at a time.
NUMPY_LOADING = threading.Lock()
# A source file larger than this is not read (a 5 MB file indexes fine; 64 MB is no document).
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Unreadable:
    """Why a file was not read: one short reason, as reports show it."""

    reason: str


@dataclass(frozen=True)
class FileBytes:
    """A regular file's content with the stat it was read under."""

    data: bytes
    size: int
    mtime_ns: int


def inside(root: Path, rel: str) -> Path | None:
    """`root/rel` resolved (symlinks followed) if it stays inside `root` (itself resolved)."""
    try:
        resolved = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return None
    return resolved if resolved.is_relative_to(root) else None


def read_regular(root: Path, rel: str, *, limit: int = MAX_FILE_BYTES) -> FileBytes | Unreadable:
    """The bytes of `root/rel` if it is a regular file inside `root` (a resolved path) of at
    most `limit` bytes.

    The file is opened without blocking and checked with `fstat` on the open descriptor, so a
    FIFO, a device or a socket is refused without ever being read, and a file swapped for one
    between the check and the read cannot slip through.
    """
    target = inside(root, rel)
    if target is None:
        return Unreadable("resolves outside the workspace root")
    try:
        fd = os.open(
            target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        )
    except PermissionError:
        return Unreadable("unreadable (permission denied)")
    except OSError as exc:
        return Unreadable(f"unreadable ({exc.strerror or exc})")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # before fdopen, which refuses a directory itself
        os.close(fd)
        return Unreadable(f"not a regular file ({_file_type(info.st_mode)})")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            return Unreadable(f"too large ({info.st_size} bytes; the limit is {limit})")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            return Unreadable(f"unreadable ({exc.strerror or exc})")
    if len(data) > limit:  # grew while being read
        return Unreadable(f"too large (over {limit} bytes)")
    return FileBytes(data, info.st_size, info.st_mtime_ns)


def looks_binary(data: bytes) -> bool:
    """Whether `data` is no text file: it holds a NUL byte (and is not UTF-16, which does)."""
    return b"\x00" in data and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def decode_text(data: bytes) -> str:
    """A file's text: UTF-8, or UTF-16 when it starts with a UTF-16 byte-order mark (files
    saved by Windows editors; the mark is not text). Raises UnicodeDecodeError."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    return data.decode("utf-8")


def read_text(root: Path, rel: str) -> str | Unreadable:
    """The text of `root/rel` (read as `read_regular` reads it, decoded as `decode_text`),
    or why it cannot be had."""
    got = read_regular(root, rel)
    if isinstance(got, Unreadable):
        return got
    try:
        return decode_text(got.data)
    except UnicodeDecodeError as exc:
        return Unreadable(f"not valid {exc.encoding.upper()} (byte {exc.start})")


def is_regular_file(path: Path) -> bool:
    """Whether `path` (symlinks followed) is a regular file; never opens it."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "a special file"


def atomic_write(target: Path, data: bytes | str, *, mode: int = 0o644, sync: bool = False) -> None:
    """Replace `target` with `data` so that readers see the old file or the new, never a part.

    The content goes to a hidden sibling first (same filesystem, so the rename is atomic);
    `sync` flushes it to disk before the rename (for files that must survive a power cut).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_folder(target: Path, fill: Callable[[Path], None]) -> None:
    """Make the folder `target` by `fill`ing a sibling temporary folder, then renaming it.

    A folder left by an earlier `target` is replaced; a failing `fill` leaves `target` as it
    was and removes the temporary folder.
    """
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def folder_size(folder: Path) -> int:
    """Bytes of the regular files below `folder` (0 when it does not exist)."""
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
