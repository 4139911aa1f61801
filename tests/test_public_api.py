"""The public API is exactly what `bekb/__init__.py` exports, pinned."""

from __future__ import annotations

import pytest

import bekb


def test_exported_names_are_pinned():
    assert sorted(bekb.__all__) == [
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


def test_every_exported_name_exists_and_errors_share_one_root():
    for name in bekb.__all__:
        value = getattr(bekb, name)
        if name.endswith("Error"):
            assert issubclass(value, bekb.BekbError)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'KnowledgeBsae'"):
        bekb.KnowledgeBsae  # noqa: B018
    assert set(bekb.__all__) <= set(dir(bekb))
