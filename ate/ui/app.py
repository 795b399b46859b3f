"""The operator's page as an ASGI app the station daemon mounts: one HTML shell, its
script and styles (package data, nothing from the internet), and a Server-Sent Events
stream of the StationView's snapshots (pushed on change, never polled).

Imports ate.ui only; the caller owns the view, the event bus and the server.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ate.ui.i18n import catalog
from ate.ui.view import StationView

LOOPBACK = "127.0.0.1"


def check_bind(host: str) -> None:
    """The page binds loopback only: signing in (needed before the page may be served to
    other machines) is not built yet, so another address is refused, not half-guarded."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(
            f"operator page on {host}: only a loopback address (127.0.0.1, ::1) is allowed "
            "until sign-in is available"
        )


_SHELL = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="static/page.css">
<script type="application/json" id="catalog">{catalog}</script>
<script src="static/page.js" defer></script>
</head>
<body>
<header id="header"></header>
<div id="banner" role="status">{connecting}</div>
<main id="fixtures"></main>
</body>
</html>
"""


def operator_app(view: StationView, *, lang: str = "en") -> Starlette:
    """The page for `view`, its strings in `lang` (en, zh)."""
    messages = catalog(lang)
    # The catalog goes inside a <script> element: "</" must not close it early.
    embedded = json.dumps(messages, ensure_ascii=False).replace("</", "<\\/")
    shell = _SHELL.format(
        lang="zh-Hans" if lang == "zh" else lang,
        title=html.escape(messages["title"]),
        catalog=embedded,
        connecting=html.escape(messages["connecting"]),
    )

    async def page(request: Request) -> Response:
        return HTMLResponse(shell, headers={"Cache-Control": "no-store"})

    async def snapshot(request: Request) -> Response:
        return JSONResponse(view.snapshot())

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            sent = -1
            # Reconnect after 1 s if the station restarts; the browser does this itself.
            yield "retry: 1000\n\n"
            while True:
                await view.changed(sent)
                # Snapshots coalesce: a burst of events costs one message, the latest.
                snap = view.snapshot()
                snap["since_ms"] = view.first_change_ms(sent)
                sent = snap["version"]  # later than what changed() woke on, if more came
                data = json.dumps(snap, ensure_ascii=False, separators=(",", ":"))
                yield f"data: {data}\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def answer(request: Request) -> Response:
        # Only this page may answer: a form on another site can neither send JSON without
        # the browser asking first (CORS) nor forge the Origin header.
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            return JSONResponse({"error": messages["error.origin"]}, status_code=403)
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return JSONResponse({"error": messages["error.json"]}, status_code=415)
        try:
            body = await request.json()
            text = body["answer"] if isinstance(body, dict) else None
            if not isinstance(text, str):
                raise ValueError("answer")
            ok = view.prompts.answer(request.path_params["id"], text)
        except (ValueError, KeyError):
            return JSONResponse({"error": messages["error.answer"]}, status_code=400)
        if not ok:
            return JSONResponse({"error": messages["error.gone"]}, status_code=409)
        return Response(status_code=204)

    async def label_png(request: Request) -> Response:
        serial = request.path_params["serial"]
        label = view.labels.labels.get(serial) if view.labels is not None else None
        if label is None:
            return Response(status_code=404)
        return Response(label.png(), media_type="image/png")

    return Starlette(
        routes=[
            Route("/", page),
            Route("/label/{serial}.png", label_png),
            Route("/prompt/{id}", answer, methods=["POST"]),
            Route("/snapshot", snapshot),
            Route("/events", events),
            Mount("/static", StaticFiles(packages=[("ate.ui", "static")]), name="static"),
        ]
    )


class PageServer:
    """The page on uvicorn, in the caller's event loop (the station's)."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self.server, self.task = server, task
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}/"

    async def close(self) -> None:
        self.server.should_exit = True
        # Event streams never end by themselves: uvicorn cancels them at a forced exit.
        self.server.force_exit = True
        await self.task


async def start_page(app: Starlette, host: str = LOOPBACK, port: int = 0) -> PageServer:
    """Serve `app` on host:port (0: any free port) until `close()`."""
    check_bind(host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    # uvicorn offers no "started" event; a failed bind ends the task instead.
    while not server.started:
        if task.done():
            await task
            raise OSError(f"operator page: could not listen on {host}:{port}")
        await asyncio.sleep(0.01)
    return PageServer(server, task)
