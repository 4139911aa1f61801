"""Fill a workspace root with the locked files, from upstream or a local mirror, sha256 verified."""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import quote

import httpx

from bekb.corpus.manifest import (
    Lock,
    LockedFile,
    LockedRepo,
    missing_from_lock,
    packaged_lock,
    read_lock,
    repin_command,
)
from bekb.corpus.selection import Selection
from bekb.domain import RepoSyncReport, SyncFailure, SyncReport
from bekb.errors import ConfigError, CorpusError, one_line
from bekb.files import atomic_write
from bekb.settings import Settings

DEFAULT_RAW_URL = "https://raw.githubusercontent.com/{owner}/{repo}/{commit}/{path}"
# First retry waits this long, each further one twice as long: upstream hiccups are short.
RETRY_BACKOFF = 0.25
# A response this far past the pinned size is cut off: it cannot match, and may not end.
_OVERSIZE_SLACK = 1 << 20
_GITHUB = re.compile(r"^https://github\.com/([^/\s]+)/([^/\s]+?)(?:\.git)?/?$")

Outcome = Literal["fetched", "copied", "skipped"]


class _Refused(Exception):
    """One file cannot be synced; the message is the report's reason line."""


def sync_workspace(
    settings: Settings,
    selection: Callable[[], Selection],
    *,
    mirror: Path | None = None,
    lock_file: Path | None = None,
) -> SyncReport:
    """Fill the configured root with the pinned corpus (`sync_corpus`), and name the files
    the agent files cite that the lock does not pin, with the command that pins them."""
    path = lock_file or settings.lock_file
    if lock_file is None and "lock_file" not in settings.model_fields_set and not path.exists():
        path = packaged_lock()  # outside a checkout: the pins this bekb was released with
    lock = read_lock(path)
    report = sync_corpus(lock, settings.root, mirror=mirror, raw_url=settings.corpus_raw_url)
    if not report.ok:
        return report
    missing = missing_from_lock(lock, selection())
    repin = repin_command(mirror or settings.root, settings.agent_files) if missing else ""
    return replace(report, unpinned=tuple(missing), repin=repin)


def sync_corpus(
    lock: Lock,
    root: Path,
    *,
    mirror: Path | None = None,
    raw_url: str = DEFAULT_RAW_URL,
    timeout: float = 20.0,
    retries: int = 2,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> SyncReport:
    """Make every locked file present under `root` with its pinned sha256.

    Files already right are skipped; the others are fetched from their repository's upstream at
    the pinned commit (`raw_url` is formatted with owner, repo, commit and path), or copied from
    `mirror`, another workspace root. Content is verified before it replaces anything, and is
    written atomically. Per-file problems are collected in the report, not raised;
    `on_progress(path, done, total)` is called after each file.

    Raises:
        CorpusError: the root cannot be created or the mirror is not a directory.
        ConfigError: `raw_url` is not a valid template.
    """
    root = _prepare_root(root)
    if mirror is not None and not mirror.is_dir():
        raise CorpusError(f"mirror folder {mirror} does not exist or is not a directory")
    _check_template(raw_url)
    counts: dict[str, Counter[str]] = {}
    failures: list[SyncFailure] = []
    total = len(lock.files)
    upstream = _Upstream(raw_url, timeout=timeout, retries=retries)
    try:
        for done, file in enumerate(lock.files, start=1):
            tally = counts.setdefault(file.repo, Counter())
            try:
                tally[_sync_file(lock, file, root, mirror, upstream)] += 1
            except _Refused as refused:
                tally["failed"] += 1
                failures.append(SyncFailure(file.path, str(refused)))
            if on_progress is not None:
                on_progress(file.path, done, total)
    finally:
        upstream.close()
    repos = tuple(
        RepoSyncReport(
            name=name,
            fetched=tally["fetched"],
            copied=tally["copied"],
            skipped=tally["skipped"],
            failed=tally["failed"],
        )
        for name, tally in sorted(counts.items())
    )
    return SyncReport(root=root, repos=repos, failures=tuple(failures))


def _sync_file(
    lock: Lock, file: LockedFile, root: Path, mirror: Path | None, upstream: _Upstream
) -> Outcome:
    target = _target(root, file.path)
    if target.is_file() and _sha256_of(target) == file.sha256:
        return "skipped"
    outcome: Outcome
    if mirror is not None:
        data, outcome = _read_mirror(mirror, file), "copied"
    else:
        repo = lock.repos.get(file.repo)
        if repo is None:
            raise _Refused(f"repository {file.repo!r} is not in the lock")
        data, outcome = upstream.fetch(repo, file), "fetched"
    digest = hashlib.sha256(data).hexdigest()
    if digest != file.sha256:
        raise _Refused(f"sha256 mismatch (expected {file.sha256[:12]}…, got {digest[:12]}…)")
    try:
        atomic_write(target, data, sync=True)  # a hidden `.part` sibling is never selected
    except OSError as exc:
        raise _Refused(f"cannot write {target}: {exc.strerror or exc}") from exc
    return outcome


def _prepare_root(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusError(f"cannot create workspace root {root}: {exc.strerror or exc}") from exc
    return root.resolve()


def _check_template(raw_url: str) -> None:
    try:
        raw_url.format(owner="o", repo="r", commit="c", path="p")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"raw file URL template {raw_url!r} is invalid: use the placeholders "
            "{owner}, {repo}, {commit} and {path}"
        ) from exc


def _target(root: Path, rel: str) -> Path:
    """Where a locked path lands; refused when it would leave the root (`..`, absolute, links)."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in rel:
        raise _Refused("path escapes the workspace root: refused")
    target = root.joinpath(*pure.parts)
    try:
        inside = target.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # symlink loop
        inside = False
    if not inside:
        raise _Refused("path resolves outside the workspace root (symlink): refused")
    return target


def _read_mirror(mirror: Path, file: LockedFile) -> bytes:
    source = _target(mirror.resolve(), file.path)
    if not source.is_file():
        raise _Refused("missing from mirror")
    try:
        return source.read_bytes()
    except OSError as exc:
        raise _Refused(f"cannot read from mirror: {exc.strerror or exc}") from exc


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
    except OSError:
        return ""  # unreadable counts as wrong: it gets replaced if the new content verifies
    return digest.hexdigest()


class _Upstream:
    """Raw file downloads over one lazily opened HTTP client, with timeouts and retries."""

    def __init__(self, raw_url: str, *, timeout: float, retries: int) -> None:
        self._raw_url = raw_url
        self._timeout = timeout
        self._retries = max(0, retries)
        self._client: httpx.Client | None = None
        # host -> why it could not be reached: offline, one file's retries are enough.
        self._unreachable: dict[str, str] = {}

    def fetch(self, repo: LockedRepo, file: LockedFile) -> bytes:
        url = self._url(repo, file)
        host = httpx.URL(url).host
        if host in self._unreachable:
            raise _Refused(self._unreachable[host])
        attempts = self._retries + 1
        problem, unreachable = "", False
        for attempt in range(attempts):
            if attempt:
                time.sleep(RETRY_BACKOFF * 2 ** (attempt - 1))
            unreachable = False
            try:
                return self._get(url, file.size)
            except httpx.TimeoutException:
                problem = f"timed out after {self._timeout:g}s"
            except httpx.ConnectError as exc:
                problem = f"cannot reach {host} ({one_line(exc)})"
                unreachable = True
            except httpx.TransportError as exc:
                problem = f"download failed ({type(exc).__name__}: {one_line(exc)})"
            except _Transient as exc:
                problem = str(exc)
            except httpx.HTTPError as exc:
                raise _Refused(f"download failed ({one_line(exc)})") from exc
        problem += f" ({attempts} attempts)" if attempts > 1 else ""
        if unreachable:
            self._unreachable[host] = problem
        raise _Refused(problem)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _url(self, repo: LockedRepo, file: LockedFile) -> str:
        if repo.upstream is None or repo.commit is None:
            raise _Refused(f"no upstream for repository {repo.name!r}: use --from DIR")
        match = _GITHUB.match(repo.upstream)
        if match is None:
            raise _Refused(f"cannot derive a raw file URL from upstream {repo.upstream!r}")
        inner = PurePosixPath(*PurePosixPath(file.path).parts[1:]).as_posix()
        owner, name = match.groups()
        return self._raw_url.format(owner=owner, repo=name, commit=repo.commit, path=quote(inner))

    def _get(self, url: str, size: int) -> bytes:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout, follow_redirects=True)
        with self._client.stream("GET", url) as response:
            status = response.status_code
            if status == 404:
                raise _Refused("not found upstream (404)")
            if status == 429 or status >= 500:
                raise _Transient(f"upstream answered HTTP {status}")
            if status != 200:
                raise _Refused(f"upstream answered HTTP {status}")
            body = bytearray()
            for block in response.iter_bytes():
                body += block
                if len(body) > size + _OVERSIZE_SLACK:
                    raise _Refused(f"sha256 mismatch (expected {size} bytes, got far more)")
            return bytes(body)


class _Transient(Exception):
    """An upstream answer worth retrying (429, 5xx)."""
