"""How a step asks the operator a question: the Protocol the `prompt` step needs. The
station's operator page (ate.ui.prompts) implements it; the sequence never imports ui.

Imports nothing from ate but the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Question:
    panel_id: str
    slot: int
    step: str
    text: str
    kind: Literal["confirm", "choice", "number"]
    choices: tuple[str, ...] = ()
    image: str | None = None  # a path the page may show beside the question
    unit: str = ""


class OperatorPrompts(Protocol):
    async def ask(self, question: Question) -> str:
        """The operator's answer as typed or pressed ("yes"/"no", a choice, a number's
        text). Cancelled by the step's timeout; the asker withdraws the question then."""
        ...
