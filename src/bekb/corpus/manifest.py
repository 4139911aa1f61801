"""The lock file: pinned repositories (upstream, commit) and the cited files' sha256 and size."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bekb.corpus.selection import Selection, select_files
from bekb.errors import CorpusError, UsageError
from bekb.files import atomic_write

LOCK_VERSION = 1
SOURCES_FILE = "SOURCES.json"
PIN_COMMAND = "bekb corpus pin"


class LockedFile(BaseModel):
    """One pinned file: its root-relative POSIX path, sha256 (hex) and size in bytes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)

    @property
    def repo(self) -> str:
        """The repository a file belongs to: its first path component."""
        return PurePosixPath(self.path).parts[0]


class LockedRepo(BaseModel):
    """A repository of the workspace: where it comes from and at which commit (None: local only)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1)
    upstream: str | None = None
    commit: str | None = None


class Lock(BaseModel):
    """The whole lock file: agent files, repositories by name, and the pinned files (sorted)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int
    agent_files: tuple[str, ...]
    repos: dict[str, LockedRepo]
    files: tuple[LockedFile, ...]

    @model_validator(mode="before")
    @classmethod
    def _name_repos(cls, data: Any) -> Any:
        # On disk a repository's name is its key; give it to the value too.
        if isinstance(data, dict) and isinstance(data.get("repos"), dict):
            repos = {
                name: {"name": name, **value} if isinstance(value, dict) else value
                for name, value in data["repos"].items()
            }
            data = {**data, "repos": repos}
        return data

    @model_validator(mode="after")
    def _check(self) -> Lock:
        if self.version != LOCK_VERSION:
            raise ValueError(f"unsupported lock version {self.version} (expected {LOCK_VERSION})")
        seen: set[str] = set()
        for file in self.files:
            if file.path in seen:
                raise ValueError(f"{file.path} is listed twice")
            seen.add(file.path)
        for name, repo in self.repos.items():
            if repo.name != name:
                raise ValueError(f"repository {name!r} is named {repo.name!r}")
        return self

    @property
    def paths(self) -> frozenset[str]:
        """Every pinned path."""
        return frozenset(file.path for file in self.files)


def read_lock(path: Path) -> Lock:
    """Load a lock file; CorpusError with one line saying what is wrong and what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CorpusError(f"lock file {path} not found: create it with `{PIN_COMMAND}`") from exc
    except OSError as exc:
        raise CorpusError(f"cannot read lock file {path}: {exc.strerror or exc}") from exc
    try:
        return Lock.model_validate_json(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        detail = f"{where}: {error['msg']}" if where else error["msg"]
        raise CorpusError(
            f"lock file {path} is malformed ({detail}): regenerate it with `{PIN_COMMAND}`"
        ) from exc


def save_lock(lock: Lock, path: Path) -> None:
    """Write the lock as pretty, key-sorted JSON (files sorted by path), atomically."""
    payload = {
        "version": lock.version,
        "agent_files": list(lock.agent_files),
        "repos": {
            name: {"upstream": repo.upstream, "commit": repo.commit}
            for name, repo in sorted(lock.repos.items())
        },
        "files": [
            {"path": f.path, "sha256": f.sha256, "size": f.size}
            for f in sorted(lock.files, key=lambda f: f.path)
        ],
    }
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if path.is_dir():
        raise UsageError(f"cannot write the lock to {path}: it is a directory")
    atomic_write(path, text)


def build_lock(root: Path, agent_files: Sequence[str]) -> Lock:
    """Pin what the agent files cite under `root` (plus the agent files), with `SOURCES.json`.

    Only files that exist are pinned; unresolved citations are the selection's to report.
    """
    selection = select_files(root, agent_files=agent_files)
    refused = {skipped.path: skipped.reason for skipped in selection.refused}
    unusable = [f"{a}: {refused[a]}" for a in agent_files if a in refused]
    if unusable:  # pinning the rest would replace a good lock with a smaller one
        raise UsageError(f"nothing pinned: {'; '.join(unusable)} (name agent files under it)")
    repos = _read_sources(selection.root / SOURCES_FILE)
    paths = sorted({*selection.files, *agent_files})
    files: list[LockedFile] = []
    for rel in paths:
        repo = PurePosixPath(rel).parts[0]
        if repo not in repos:
            raise CorpusError(
                f"{rel} belongs to repository {repo!r}, which {SOURCES_FILE} does not list"
            )
        data = (selection.root / rel).read_bytes()
        files.append(LockedFile(path=rel, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    return Lock(
        version=LOCK_VERSION,
        agent_files=tuple(agent_files),
        repos=repos,
        files=tuple(files),
    )


def missing_from_lock(lock: Lock, selection: Selection) -> list[str]:
    """Files the selection needs (cited files and agent files) that the lock does not pin."""
    needed = {*selection.files, *selection.agent_files}
    return sorted(needed - lock.paths)


def repin_command(root: Path | str, agent_files: Sequence[str] = ()) -> str:
    """The command that regenerates the lock from a workspace root."""
    agents = "".join(f" --agent {agent}" for agent in agent_files)
    return f"bekb --root {root} corpus pin{agents}"


def packaged_lock() -> Path:
    """The lock this version of bekb ships with: the backend specialist's pinned corpus."""
    from importlib.resources import files

    return Path(str(files("bekb") / "data" / "sources.lock.json"))


def _read_sources(path: Path) -> dict[str, LockedRepo]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CorpusError(f"{path} not found: the workspace root needs its {SOURCES_FILE}") from exc
    except (OSError, ValueError) as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from exc
    entries = data.get("repos") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise CorpusError(f'{path} has no "repos" object')
    try:
        return {
            name: LockedRepo(name=name, upstream=entry.get("upstream"), commit=entry.get("commit"))
            for name, entry in sorted(entries.items())
        }
    except (AttributeError, ValidationError) as exc:
        raise CorpusError(f"{path} has a malformed repository entry: {exc}") from exc
