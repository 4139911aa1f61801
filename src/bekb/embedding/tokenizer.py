"""The model's own tokenizer (fast, Rust, no torch): token counts and cuts for chunking."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from bekb.embedding.model import ModelSpec
from bekb.errors import EmbeddingError


class ModelTokenizer:
    """Counts and splits text as the embedding model does (a `chunking.TokenCounter`)."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self._tokenizer = tokenizer
        self._max_tokens = max_tokens

    @classmethod
    def for_model(cls, spec: ModelSpec) -> ModelTokenizer:
        """The tokenizer of a model folder (tokenizer.json) or, failing that, of the model."""
        from tokenizers import Tokenizer

        if spec.path is not None and (spec.path / "tokenizer.json").exists():
            tokenizer = Tokenizer.from_file(str(spec.path / "tokenizer.json"))
        else:
            try:
                tokenizer = Tokenizer.from_pretrained(spec.name)
            except Exception as exc:  # the hub is unreachable or the id is unknown
                raise EmbeddingError(
                    f"cannot load the tokenizer of {spec.name!r}: give a local model folder "
                    "(BEKB_EMBED_MODEL=/path/to/model)"
                ) from exc
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(tokenizer, spec.max_tokens)

    @property
    def max_tokens(self) -> int:
        """Largest input the model reads, special tokens included."""
        return self._max_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, without special tokens."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def split(self, text: str, limit: int) -> list[str]:
        """Consecutive pieces of `text` of at most `limit` tokens; they join back to `text`."""
        offsets = self._tokenizer.encode(text, add_special_tokens=False).offsets
        cuts = [offsets[i][0] for i in range(limit, len(offsets), limit)]
        bounds = [0, *cuts, len(text)]
        return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
