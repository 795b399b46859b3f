"""The operator's page on a real server (uvicorn on 127.0.0.1:0, in the test's loop) and
a real simulated fixture (the scheduler tests' bench) feeding its view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ate.ui.app import PageServer, operator_app
from ate.ui.app import start_page as serve
from ate.ui.view import StationView
from tests.scheduler.conftest import make_bench  # noqa: F401  (a pytest fixture)

CHROMIUM = "/usr/bin/chromium"


async def start_page(view: StationView, lang: str = "en") -> PageServer:
    return await serve(operator_app(view, lang=lang))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()
