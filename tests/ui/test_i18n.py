"""Every operator-visible string comes from a catalog, and every catalog has them all."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from ate.ui.i18n import LANGUAGES, catalog


def test_catalogs_have_the_same_keys_and_no_empty_text() -> None:
    en = catalog("en")
    for lang in LANGUAGES:
        messages = catalog(lang)
        assert set(messages) == set(en), lang
        assert all(isinstance(v, str) and v.strip() for v in messages.values()), lang
    zh = catalog("zh")
    assert sum(zh[k] != en[k] for k in en) >= len(en) - 3  # MAC, PIN... read the same


def test_every_key_the_page_uses_is_in_the_catalog() -> None:
    script = resources.files("ate.ui").joinpath("static/page.js").read_text("utf-8")
    used = set(re.findall(r'\bT\["([a-zA-Z.]+)"\]', script))
    used |= set(re.findall(r"\bT\.([a-zA-Z]+)\b", script))
    # Keys built at run time: a prefix plus a state, role or action name.
    prefixes = set(re.findall(r'\bT\["([a-z]+\.)" \+', script))
    assert used and prefixes >= {"state.", "do.", "role.", "fixture."}
    assert used <= set(catalog("en")), used - set(catalog("en"))
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in catalog("en")), prefix
    for state in (
        "waiting",
        "testing",
        "provisioning",
        "locking",
        "PASS",
        "FAIL",
        "ERROR",
        "ABORTED",
        "EMPTY",
    ):
        assert f"state.{state}" in catalog("en")


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed are en, zh"):
        catalog("fr")


def test_catalog_files_are_plain_json() -> None:
    for lang in LANGUAGES:
        text = resources.files("ate.ui.i18n").joinpath(f"{lang}.json").read_text("utf-8")
        assert json.loads(text) == catalog(lang)
