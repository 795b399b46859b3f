"""The operator's page on a real server (uvicorn on 127.0.0.1:0, in the test's loop) and
a real simulated fixture (the scheduler tests' bench) feeding its view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from ate.ui.app import operator_app
from ate.ui.view import StationView
from tests.scheduler.conftest import make_bench  # noqa: F401  (a pytest fixture)

CHROMIUM = "/usr/bin/chromium"


class PageServer:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self.server, self.task = server, task
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}/"

    async def close(self) -> None:
        self.server.should_exit = True
        # SSE streams never end by themselves: let uvicorn cancel them at shutdown.
        self.server.force_exit = True
        await self.task


async def start_page(view: StationView, lang: str = "en") -> PageServer:
    config = uvicorn.Config(
        operator_app(view, lang=lang),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    return PageServer(server, task)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()
