"""Fixtures and hooks shared across test folders.

SoftHSM2 sees only the tokens that existed when its module was first loaded in this
process, so the whole test session shares one token directory, made before any CA opens.

A test that needs a part this machine lacks (SoftHSM2, PostgreSQL, Chromium) is skipped
with the command that installs it, so a newcomer's first run says what is missing. CI and
`.ci/run` set ATE_REQUIRE_ALL=1: there a skip is a failure, so nothing quietly stops
being tested.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Generator, Iterator

import pytest

from ate.pki.errors import PkiError
from ate.pki.softhsm import SoftHsmToken, create_token, find_module

TOKEN_LABEL = "ate-tests"


@pytest.fixture(scope="session")
def hsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (Debian: apt-get install -y softhsm2)")
    try:
        find_module()
    except PkiError as exc:
        pytest.skip(f"{exc} (Debian: apt-get install -y softhsm2)")
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Under ATE_REQUIRE_ALL=1 (CI), a skipped test is a failure naming what was missing.

    Skips that stay skips: an expected failure (xfail), tests on real hardware
    (`hardware`), and tests needing a kernel facility the machine may lack
    (`kernel_feature`, e.g. gpio-sim), whose skip reason says what is missing.
    """
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("ATE_REQUIRE_ALL") != "1" or not report.skipped:
        return
    if hasattr(report, "wasxfail") or item.get_closest_marker("kernel_feature") is not None:
        return
    if item.get_closest_marker("hardware") is not None:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under ATE_REQUIRE_ALL=1 (CI must test everything): {reason}"
