"""Message catalogs: every string the operator reads, per language (en, zh).

A catalog missing a key another has is a packaging bug, refused when loaded.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

LANGUAGES = ("en", "zh")


@cache
def catalog(lang: str) -> dict[str, str]:
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r}: allowed are {', '.join(LANGUAGES)}")
    text = resources.files(__package__).joinpath(f"{lang}.json").read_text("utf-8")
    messages: dict[str, str] = json.loads(text)
    if lang != "en":
        missing = sorted(set(catalog("en")) - set(messages))
        if missing:
            raise ValueError(f"catalog {lang}.json lacks {', '.join(missing)}")
    return messages
