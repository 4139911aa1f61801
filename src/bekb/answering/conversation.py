"""A conversation: each question is answered with the turns before it, so that a
follow-up ("and how do I test the compensations?") is understood in context."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from bekb.domain import Answer, Turn

# Earlier turns sent with a question: enough for a follow-up, little for the prompt.
MAX_TURNS = 10


class Asker(Protocol):
    """What answers one question after earlier turns (`KnowledgeBase.ask`, bound)."""

    def __call__(
        self,
        question: str,
        *,
        history: Sequence[Turn],
        on_text: Callable[[str], None] | None = None,
        on_search: Callable[[str], None] | None = None,
    ) -> Answer: ...


class Conversation:
    """The questions asked so far and their answers; `ask` sends the last turns with each
    new question (to Claude, to query expansion, and to retrieval, which searches a
    follow-up together with the question before it)."""

    def __init__(self, ask: Asker) -> None:
        self._ask = ask
        self.answers: list[Answer] = []

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The conversation so far, oldest first."""
        return tuple(Turn(a.question, a.text) for a in self.answers)

    @property
    def last(self) -> Answer | None:
        """The latest answer, if any."""
        return self.answers[-1] if self.answers else None

    def ask(
        self,
        question: str,
        *,
        on_text: Callable[[str], None] | None = None,
        on_search: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer `question` in the context of the turns before it, and remember it."""
        answer = self._ask(
            question, history=self.turns[-MAX_TURNS:], on_text=on_text, on_search=on_search
        )
        self.answers.append(answer)
        return answer
