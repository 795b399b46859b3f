"""PromptBroker: the operator page's side of ate.sequence.prompts.OperatorPrompts. A
question waits on its slot's tile until answered on the page or withdrawn by the step's
timeout. Owned by the StationView (the tile shows it); imports ate.sequence.prompts only.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ate.sequence.prompts import Question

MAX_ANSWER = 32  # a button's word or a number: anything longer is not an answer


@dataclass
class Pending:
    id: str
    question: Question
    answer: asyncio.Future[str] = field(repr=False)

    def shown(self) -> dict[str, Any]:
        q = self.question
        return {
            "id": self.id,
            "text": q.text,
            "kind": q.kind,
            "choices": list(q.choices),
            "unit": q.unit,
            "image": q.image is not None,
        }


class PromptBroker:
    def __init__(self, changed: Callable[[], None]) -> None:
        self._changed = changed
        self.pending: dict[str, Pending] = {}

    def for_slot(self, panel_id: str, slot: int) -> Pending | None:
        for p in self.pending.values():
            if p.question.panel_id == panel_id and p.question.slot == slot:
                return p
        return None

    async def ask(self, question: Question) -> str:
        # Unguessable ids: an answer is for this question, not for whatever is asked next.
        pending = Pending(
            secrets.token_urlsafe(12), question, asyncio.get_running_loop().create_future()
        )
        self.pending[pending.id] = pending
        self._changed()
        try:
            return await pending.answer
        finally:
            del self.pending[pending.id]
            self._changed()

    def answer(self, prompt_id: str, answer: str) -> bool:
        """False when no such question waits (answered, timed out, or never asked)."""
        pending = self.pending.get(prompt_id)
        if pending is None or pending.answer.done():
            return False
        if not answer or len(answer) > MAX_ANSWER:
            raise ValueError(f"an answer is 1 to {MAX_ANSWER} characters")
        pending.answer.set_result(answer)
        return True
