"""Telling a damaged embedded store from one that is only unreadable, and tidying set-asides.

Chroma's own messages for a damaged SQLite file vary ("database disk image is malformed",
"Failed to pull logs from the log store", "Failed to apply logs..."). So when a Chroma call
fails, the file itself is asked: SQLite's `quick_check` says whether it is damaged, and the
folder's permissions whether it is merely unreadable or read-only, which must never lead to
setting the store aside.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

from bekb.errors import StoreError, one_line

DATABASE = "chroma.sqlite3"
DAMAGED_PREFIX = "chroma.damaged-"


def sqlite_problem(folder: Path) -> str | None:
    """What SQLite finds wrong with the store's database file, or None when it is sound (or
    cannot be opened at all, which is an access problem, not damage)."""
    database = folder / DATABASE
    if not database.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as exc:
        text = str(exc)
        return text if "malformed" in text or "not a database" in text else None
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        db.close()
    found = [str(row[0]) for row in rows]
    return None if found == ["ok"] else one_line("; ".join(found[:3]), 160)


def access_problem(folder: Path) -> str | None:
    """Why the store's folder cannot be read and written, or None when it can."""
    for path in (folder, folder / DATABASE):
        if not path.exists():
            continue
        if not os.access(path, os.R_OK):
            return f"{path} is not readable (permission denied)"
        if not os.access(path, os.W_OK):
            return f"{path} is read-only"
    try:
        if folder.exists() and os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only file system"
    except OSError:
        pass
    return None


def diagnose(folder: Path, action: str, exc: BaseException) -> StoreError:
    """The StoreError for a failed Chroma call on the embedded store in `folder`."""
    blocked = access_problem(folder)
    if blocked is not None:
        return StoreError(
            f"cannot {action}: {blocked} (fix the permissions, or point --index-dir elsewhere)"
        )
    damage = sqlite_problem(folder)
    if damage is not None:
        return StoreError(
            f"the index store {folder} is damaged ({damage}): run `bekb index` to rebuild it",
            damaged=True,
        )
    return StoreError(f"Chroma failed to {action}: {one_line(exc)}")


def set_aside(folder: Path) -> Path:
    """Move a damaged store out of the way (kept for inspection) so a fresh one can be built;
    only the newest set-aside store is kept. Returns where it went."""
    target = folder.with_name(f"{DAMAGED_PREFIX}{time.time_ns()}")
    folder.rename(target)
    for older in set_aside_stores(folder.parent)[1:]:
        shutil.rmtree(older, ignore_errors=True)
    return target


def set_aside_stores(index_dir: Path) -> list[Path]:
    """Damaged stores set aside in `index_dir`, newest first."""
    found = [p for p in index_dir.glob(f"{DAMAGED_PREFIX}*") if p.is_dir()]
    return sorted(found, key=lambda p: p.name, reverse=True)
