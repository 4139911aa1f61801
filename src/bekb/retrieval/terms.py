"""The specific terms of a question: words shaped like names (products, APIs, identifiers).

A question next to what the corpus covers ("a MassTransit saga", "pg_repack", "SQLSTATE
40001") shares most of its words with the corpus; what gives it away is a name the corpus
never uses. Names are told by their shape alone, not by a list: CamelCase, acronyms, words
with digits, identifiers joined by `.` or `_` (or `-` with a one-letter or numeric part, as
in `x-queue-type`), and capitalised words inside a sentence. Whether the corpus uses a term is
the keyword index's business (`KeywordIndex.lacks`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# A word as a question writes it: letters and digits, with `.`, `_`, `-`, `+`, `#` and `/`
# inside it (`router.yaml`, `pg_repack`, `x-queue-type`, `C#`, `access/refresh`).
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+#/-]*[A-Za-z0-9+#]|[A-Za-z0-9]")
_CAMEL = re.compile(r"[a-z][A-Z]")
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._][A-Za-z0-9]+)+")
_VOWELS = frozenset("aeiouy")

Strength = Literal["strong", "weak"]


@dataclass(frozen=True)
class Term:
    """A name-shaped word of a question; `weak` ones (a capitalised word) might be prose."""

    text: str
    strength: Strength
    identifier: bool = False  # joined by `.`, `_` or `-`: matched as written, not as words


def specific_terms(question: str) -> list[Term]:
    """The name-shaped words of `question`, in order, each once."""
    found: dict[str, Term] = {}
    for match in _WORD.finditer(question):
        word = match.group().rstrip(".")
        before = question[: match.start()].rstrip()
        starts_sentence = not before or before[-1] in ".?!:;\"'("
        term = _shape(word, starts_sentence)
        if term is not None:
            found.setdefault(term.text.lower(), term)
    return list(found.values())


def _shape(word: str, starts_sentence: bool) -> Term | None:
    parts = re.split(r"[-/]", word)
    if _IDENTIFIER.fullmatch(word) or (
        "-" in word and any(len(p) == 1 and p.isalpha() for p in parts)
    ):
        return Term(word, "strong", identifier=True)
    if any(_CAMEL.search(part) for part in parts):
        return Term(word, "strong")
    if any(sum(ch.isupper() for ch in part) >= 2 and part.upper() == part for part in parts):
        return Term(word, "strong")  # an acronym: SQS, JWKS, BPMN
    letters = any(ch.isalpha() for ch in word)
    if (letters and any(ch.isdigit() for ch in word)) or re.fullmatch(r"\d{3,}", word):
        return Term(word, "strong")  # v2, sqlite3, 40001
    if word.islower() and len(word) >= 3 and word.isalpha() and not _VOWELS & set(word):
        return Term(word, "strong")  # an acronym written in lower case: rmcp, grpc
    if word[:1].isupper() and not starts_sentence and word != "I":
        return Term(word, "weak")
    return None


def identifiers(text: str) -> set[str]:
    """The identifier-shaped words of a text, lower-cased (what `Term.identifier` terms are
    looked up in)."""
    found = set()
    for match in _WORD.finditer(text):
        term = _shape(match.group().rstrip("."), starts_sentence=True)
        if term is not None and term.identifier:
            found.add(term.text.lower())
    return found


def decides_off_topic(missing: list[Term]) -> bool:
    """Whether the terms the corpus never uses make the question one it does not cover: a
    name-shaped term of strong shape, or two capitalised words."""
    strong = [t for t in missing if t.strength == "strong"]
    return bool(strong) or len(missing) >= 2
