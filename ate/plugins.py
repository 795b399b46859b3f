"""Named objects that packages register through entry points (fixture controller drivers,
instrument drivers, labgrid's way): found by name, loaded, and checked to be what their
group holds. What went wrong is one sentence naming what is registered, never a traceback
(a broken package is said, not raised).

Imports the standard library only.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

T = TypeVar("T")


def registered(group: str) -> list[str]:
    """The names registered in `group`, sorted."""
    return sorted({ep.name for ep in entry_points(group=group)})


def load(group: str, name: str, kind: type[T], noun: str, error: type[LookupError]) -> T:
    """The `kind` object registered as `name` in `group`; `error` (the caller's own
    LookupError) saying why not, with `noun` naming what the group holds."""
    found = entry_points(group=group, name=name)
    if not found:
        raise error(
            f"{noun} {name!r} is not registered; registered: "
            f"{', '.join(registered(group)) or 'none'} (entry point group {group})"
        )
    try:
        obj = next(iter(found)).load()
    except (ImportError, AttributeError) as exc:
        raise error(f"{noun} {name!r} is registered but cannot be loaded: {exc}") from None
    if not isinstance(obj, kind):
        raise error(f"entry point {name!r} in {group} is not an ate {kind.__name__}")
    return obj
