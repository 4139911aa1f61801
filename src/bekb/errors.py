"""The BekbError tree: every failure bekb reports on purpose.

```
BekbError
├── ConfigError             bad bekb.toml, environment or flag combination
├── UsageError              a bad argument to a library call (empty question, k < 1)
├── CorpusError             root, agent file or lock file missing or unreadable
│   └── ChecksumError       a synced file differs from its pinned sha256
├── IndexStateError         the index on disk is unusable as it is
│   ├── IndexNotBuiltError  search/ask before the first `bekb index`
│   └── IndexLockedError    another writer kept the lock past the wait
├── StoreError              Chroma (embedded or server) failed
├── EmbeddingError          model failed to load or gave the wrong dimension
└── AnswerError             Anthropic API failed after the SDK's own retries
```

Foreign errors are wrapped once, where the dependency lives, always `from exc`.
Messages are one line and say what to do next.
"""

from __future__ import annotations


class BekbError(Exception):
    """Base class of every error bekb raises on purpose."""


class ConfigError(BekbError):
    """Settings are invalid or contradict each other."""


class UsageError(BekbError):
    """A library call got an argument it cannot work with."""


class CorpusError(BekbError):
    """The workspace root, an agent file or the lock file cannot be used."""


class ChecksumError(CorpusError):
    """A file's sha256 differs from the one pinned in the lock file."""


class IndexStateError(BekbError):
    """The index on disk cannot be used as it is."""


class IndexNotBuiltError(IndexStateError):
    """No index has been built yet in the index directory."""


class IndexLockedError(IndexStateError):
    """Another process holds the index write lock."""


class StoreError(BekbError):
    """The vector store (Chroma, embedded or server) failed; `damaged` says whether the
    embedded store's files are damaged (rebuilding it is the fix)."""

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


class EmbeddingError(BekbError):
    """The embedding model could not be loaded or misbehaved."""


class AnswerError(BekbError):
    """The LLM API failed; `transient` says whether a retry later may work."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def one_line(problem: BaseException | str, limit: int = 300) -> str:
    """A foreign error (or text) as one short line: whitespace folded, long text cut."""
    text = " ".join(str(problem).split())
    if not text and isinstance(problem, BaseException):
        text = type(problem).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
