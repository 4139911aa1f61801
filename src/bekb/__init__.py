"""bekb: a retrieval-augmented knowledge base over a backend specialist's skill documents.

Example:
    from bekb import KnowledgeBase

    kb = KnowledgeBase.open(root="../shared/corpus", index_dir="/tmp/bekb-index")
    kb.index()
    answer = kb.ask("how do I do sagas", use_llm=False)
    print(answer.text)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bekb.answering.conversation import Conversation
    from bekb.domain import (
        Answer,
        Citation,
        Copy,
        CorpusStatus,
        Excerpt,
        FileStatus,
        Hit,
        IndexReport,
        IndexStatus,
        Persona,
        Progress,
        SkippedFile,
        Source,
        SyncReport,
        Turn,
        Usage,
    )
    from bekb.errors import (
        AnswerError,
        BekbError,
        ChecksumError,
        ConfigError,
        CorpusError,
        EmbeddingError,
        IndexLockedError,
        IndexNotBuiltError,
        IndexStateError,
        StoreError,
        UsageError,
    )
    from bekb.knowledge_base import KnowledgeBase
    from bekb.settings import Settings

# Where each public name lives. Why lazy (PEP 562 `__getattr__`): `import bekb` would
# otherwise cost ~0.4 s of imports (pydantic, the knowledge base) before the command line
# can handle Ctrl-C, and a Ctrl-C in that time printed a traceback; names load on first use.
_HOMES: dict[str, str] = {
    "Conversation": "bekb.answering.conversation",
    "KnowledgeBase": "bekb.knowledge_base",
    "Settings": "bekb.settings",
    **dict.fromkeys(
        ("Answer", "Citation", "Copy", "CorpusStatus", "Excerpt", "FileStatus", "Hit",
         "IndexReport", "IndexStatus", "Persona", "Progress", "SkippedFile", "Source",
         "SyncReport", "Turn", "Usage"),
        "bekb.domain",
    ),
    **dict.fromkeys(
        ("AnswerError", "BekbError", "ChecksumError", "ConfigError", "CorpusError",
         "EmbeddingError", "IndexLockedError", "IndexNotBuiltError", "IndexStateError",
         "StoreError", "UsageError"),
        "bekb.errors",
    ),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bekb' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "Answer",
    "AnswerError",
    "BekbError",
    "ChecksumError",
    "Citation",
    "ConfigError",
    "Conversation",
    "Copy",
    "CorpusError",
    "CorpusStatus",
    "EmbeddingError",
    "Excerpt",
    "FileStatus",
    "Hit",
    "IndexLockedError",
    "IndexNotBuiltError",
    "IndexReport",
    "IndexStateError",
    "IndexStatus",
    "KnowledgeBase",
    "Persona",
    "Progress",
    "Settings",
    "SkippedFile",
    "Source",
    "StoreError",
    "SyncReport",
    "Turn",
    "Usage",
    "UsageError",
]
