"""The event bus: the scheduler publishes, logs/records/CLI/UI subscribe.

Subscribers run synchronously on the loop and must be quick; one that raises is
reported and dropped from nothing else: the panel and other subscribers carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ate.model.events import Event

Subscriber = Callable[[Event], None]
_log = logging.getLogger(__name__)


class EventBus:
    __slots__ = ("_subs", "errors")

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self.errors = 0

    def subscribe(self, fn: Subscriber) -> None:
        self._subs.append(fn)

    def emit(self, event: Event) -> None:
        for fn in self._subs:
            try:
                fn(event)
            except Exception:  # a broken display must not fail a unit
                self.errors += 1
                _log.exception("event subscriber %r failed on %s", fn, type(event).__name__)
