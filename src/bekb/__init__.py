"""bekb: a retrieval-augmented knowledge base over a backend specialist's skill documents.

Example:
    from bekb import KnowledgeBase

    kb = KnowledgeBase.open(root="../shared/corpus", index_dir="/tmp/bekb-index")
    kb.index()
    answer = kb.ask("how do I do sagas", use_llm=False)
    print(answer.text)
"""

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
