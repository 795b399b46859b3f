"""Fixtures shared across test folders.

SoftHSM2 sees only the tokens that existed when its module was first loaded in this
process, so the whole test session shares one token directory, made before any CA opens.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from ate.pki.softhsm import SoftHsmToken, create_token

TOKEN_LABEL = "ate-tests"


@pytest.fixture(scope="session")
def hsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    saved = os.environ.get("SOFTHSM2_CONF")
    token = create_token(
        tmp_path_factory.mktemp("softhsm"),
        TOKEN_LABEL,
        pin=secrets.token_hex(8),
        so_pin=secrets.token_hex(8),
    )
    yield token
    if saved is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = saved
