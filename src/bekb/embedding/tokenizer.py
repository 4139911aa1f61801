"""The model's own tokenizer (fast, Rust, no torch): token counts and cuts for chunking."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from bekb.embedding.model import ModelSpec
from bekb.errors import ConfigError, EmbeddingError, one_line


class ModelTokenizer:
    """Counts and splits text as the embedding model does (a `chunking.TokenCounter`)."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self._tokenizer = tokenizer
        self._max_tokens = max_tokens

    @classmethod
    def for_model(cls, spec: ModelSpec) -> ModelTokenizer:
        """The tokenizer of a model folder (tokenizer.json) or, failing that, of the model."""
        from tokenizers import Tokenizer

        if spec.path is None:  # never fetched from the hub: bekb runs offline
            raise ConfigError(
                f"embedding model {spec.name!r} is neither a local folder, the bundled model "
                "nor in the Hugging Face cache: give the path of a sentence-transformers model "
                "folder (BEKB_EMBED_MODEL=/path/to/model)"
            )
        if not (spec.path / "tokenizer.json").is_file():
            raise EmbeddingError(
                f"embedding model folder {spec.path} has no tokenizer.json: bekb needs the "
                "model's fast tokenizer"
            )
        try:
            tokenizer = Tokenizer.from_file(str(spec.path / "tokenizer.json"))
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load the tokenizer in {spec.path}: {one_line(exc)}"
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
