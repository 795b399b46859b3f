"""The operator's page as an ASGI app the station daemon mounts: one HTML shell, its
script and styles (package data, nothing from the internet), and a Server-Sent Events
stream of the StationView's snapshots (pushed on change, never polled).

Imports ate.ui only; the caller owns the view, the event bus and the server.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ate.config.sequence import PROMPT_IMAGE_TYPES
from ate.config.station import is_loopback
from ate.ui.auth import SESSION_S, AuthError, Authority, LockedOut, Session, check_role, may
from ate.ui.i18n import catalog
from ate.ui.scans import ScanRefused
from ate.ui.view import StationView

LOOPBACK = "127.0.0.1"
COOKIE = "ate_session"
CSRF_HEADER = "X-CSRF-Token"


def check_bind(host: str, remote: bool = False) -> None:
    """Loopback unless `remote` was set explicitly (and then sign-in is required)."""
    if not is_loopback(host) and not remote:
        raise ValueError(
            f"operator page on {host}: only a loopback address (127.0.0.1, ::1) unless the "
            "station's setting allows remote access (then everyone signs in)"
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
<div id="account"></div>
<div id="notice" role="alert" hidden></div>
<div id="load" role="dialog" hidden></div>
<div id="banner" role="status">{connecting}</div>
<main id="fixtures"></main>
</body>
</html>
"""


class ContentLoader(Protocol):
    """The station's sequences and profiles an engineer may load (blocking calls)."""

    def offer(self) -> dict[str, list[dict[str, object]]]: ...
    def choose(self, kind: str, digest: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Action:
    """A privileged button on the page: who may press it and what it does (the daemon's)."""

    role: str
    run: Callable[[], Awaitable[None]]


def operator_app(
    view: StationView,
    *,
    lang: str = "en",
    auth: Authority | None = None,
    actions: Mapping[str, Action] | None = None,
    remote: bool = False,
    loader: ContentLoader | None = None,
    on_load: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """The page for `view`, its strings in `lang` (en, zh). With `auth`, people sign in
    and privileged acts (label reprint, `actions`) check their role. `remote`: the page
    is served beyond loopback, so everything but the read-only view needs a session.
    `loader`: an engineer may load another approved sequence or profile (then `on_load`)."""
    messages = catalog(lang)
    acts = dict(actions or {})
    if remote and auth is None:
        raise ValueError("an operator page served beyond loopback needs sign-in (auth)")
    for action in acts.values():
        check_role(action.role)
    # The catalog goes inside a <script> element: "</" must not close it early.
    embedded = json.dumps(
        {
            "messages": messages,
            "auth": auth is not None,
            "actions": sorted(acts),
            "load": loader is not None and auth is not None,
        },
        ensure_ascii=False,
    ).replace("</", "<\\/")
    shell = _SHELL.format(
        lang="zh-Hans" if lang == "zh" else lang,
        title=html.escape(messages["title"]),
        catalog=embedded,
        connecting=html.escape(messages["connecting"]),
    )

    def refuse(key: str, status: int, **fmt: str) -> Response:
        return JSONResponse({"error": messages[key].format(**fmt)}, status_code=status)

    def session_of(request: Request) -> Session | None:
        return auth.session(request.cookies.get(COOKIE)) if auth is not None else None

    async def json_body(request: Request) -> dict[str, Any] | Response:
        # Only this page may post: a form on another site can neither send JSON without
        # the browser asking first (CORS) nor forge the Origin header.
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            return refuse("error.origin", 403)
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return refuse("error.json", 415)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return refuse("error.answer", 400)
        return body

    def signed_in(request: Request, needed: str | None) -> Session | Response:
        """The caller's session, checked for its CSRF token and, if `needed`, its role."""
        session = session_of(request)
        if session is None:
            return refuse("error.signin", 401)
        if auth is None or not auth.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            return refuse("error.csrf", 403)
        if needed is not None and not may(session.role, needed):
            return refuse("error.role", 403, role=messages[f"role.{needed}"])
        return session

    async def operator_body(request: Request) -> dict[str, Any] | Response:
        """An operator's act (an answer, a scan): its JSON body; beyond loopback only
        from a signed-in session with its CSRF token."""
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if remote:
            checked = signed_in(request, "operator")
            if isinstance(checked, Response):
                return checked
        return body

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

    async def sign_in(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if auth is None:
            return refuse("error.noauth", 404)
        name, pin, badge = body.get("name"), body.get("pin"), body.get("badge")
        try:
            if isinstance(badge, str):
                session, cookie = await asyncio.to_thread(auth.sign_in_badge, badge)
            elif isinstance(name, str) and isinstance(pin, str):
                session, cookie = await asyncio.to_thread(auth.sign_in, name, pin)
            else:
                return refuse("error.badpin", 401)
        except LockedOut as exc:
            return refuse("error.locked", 429, until=exc.until)
        except AuthError:
            return refuse("error.badbadge" if isinstance(badge, str) else "error.badpin", 401)
        response = JSONResponse({"user": session.user, "role": session.role, "csrf": session.csrf})
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_S,
            httponly=True,
            samesite="strict",
            secure=remote or request.url.scheme == "https",
        )
        return response

    async def who(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return JSONResponse({"user": None})
        return JSONResponse({"user": session.user, "role": session.role, "csrf": session.csrf})

    async def sign_out(request: Request) -> Response:
        checked = signed_in(request, None)
        if isinstance(checked, Response):
            return checked
        response = Response(status_code=204)
        response.delete_cookie(COOKIE)
        return response

    async def answer(request: Request) -> Response:
        body = await operator_body(request)
        if isinstance(body, Response):
            return body
        text = body.get("answer")
        try:
            if not isinstance(text, str):
                raise ValueError("answer")
            ok = view.prompts.answer(request.path_params["id"], text)
        except ValueError:
            return refuse("error.answer", 400)
        if not ok:
            return refuse("error.gone", 409)
        return Response(status_code=204)

    async def scan(request: Request) -> Response:
        """A label scanned for a slot ({"code": ...}; an empty code clears the slot's)."""
        body = await operator_body(request)
        if isinstance(body, Response):
            return body
        book, code = view.scans, body.get("code")
        if book is None:
            return Response(status_code=404)
        try:
            slot = int(request.path_params["slot"])
        except ValueError:
            return refuse("error.scan.slot", 400)
        if not isinstance(code, str):
            return refuse("error.scan.bad", 400)
        fixture = request.path_params["fixture"]
        try:
            if code.strip():
                serial = book.scan(fixture, slot, code)
            else:
                book.clear(fixture, slot)
                serial = None
        except ScanRefused as exc:
            return refuse(
                exc.key, 409 if exc.key == "error.scan.busy" else 400, slot=str(exc.slot or "")
            )
        return JSONResponse({"serial": serial})

    async def prompt_image(request: Request) -> Response:
        # Only the picture of a question now open: never a path the request names.
        pending = view.prompts.pending.get(request.path_params["id"])
        if pending is None or pending.question.image is None:
            return Response(status_code=404)
        path = Path(pending.question.image)
        media = PROMPT_IMAGE_TYPES.get(path.suffix.lower())
        if media is None:
            return Response(status_code=404)
        return FileResponse(path, media_type=media, headers={"Cache-Control": "no-store"})

    async def label_png(request: Request) -> Response:
        serial = request.path_params["serial"]
        label = view.labels.labels.get(serial) if view.labels is not None else None
        if label is None:
            return Response(status_code=404)
        return Response(label.png(), media_type="image/png")

    async def reprint(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        checked = signed_in(request, "technician")
        if isinstance(checked, Response):
            return checked
        serial = request.path_params["serial"]
        label = view.labels.labels.get(serial) if view.labels is not None else None
        if label is None or view.labels is None:
            return Response(status_code=404)
        assert auth is not None
        await asyncio.to_thread(auth.audit, checked, "label.reprint", {"serial": serial})
        view.labels.print(label)
        return Response(status_code=204)

    async def run_action(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        act = acts.get(request.path_params["name"])
        if act is None:
            return Response(status_code=404)
        checked = signed_in(request, act.role)
        if isinstance(checked, Response):
            return checked
        assert auth is not None
        name = request.path_params["name"]
        await asyncio.to_thread(auth.audit, checked, "action", {"action": name})
        await act.run()
        return Response(status_code=204)

    async def load_offer(request: Request) -> Response:
        checked = signed_in(request, "engineer")
        if isinstance(checked, Response):
            return checked
        if loader is None:
            return Response(status_code=404)
        return JSONResponse(await asyncio.to_thread(loader.offer))

    async def load(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        checked = signed_in(request, "engineer")
        if isinstance(checked, Response):
            return checked
        kind, digest = body.get("kind"), body.get("digest")
        if loader is None or auth is None:
            return Response(status_code=404)
        if not isinstance(kind, str) or not isinstance(digest, str):
            return refuse("error.answer", 400)
        try:
            name = await asyncio.to_thread(loader.choose, kind, digest)
        except ValueError as exc:
            await asyncio.to_thread(
                auth.audit, checked, "load.refused", {"kind": kind, "digest": digest}
            )
            return refuse("error.load", 409, why=str(exc))
        await asyncio.to_thread(
            auth.audit, checked, "load", {"kind": kind, "digest": digest, "name": name}
        )
        if on_load is not None:
            await on_load()
        return JSONResponse({"name": name}, status_code=202)

    app = Starlette(
        routes=[
            Route("/load", load_offer),
            Route("/load", load, methods=["POST"]),
            Route("/", page),
            Route("/session", who),
            Route("/signin", sign_in, methods=["POST"]),
            Route("/signout", sign_out, methods=["POST"]),
            Route("/prompt/{id}", answer, methods=["POST"]),
            Route("/prompt/{id}/image", prompt_image),
            Route("/scan/{fixture}/{slot}", scan, methods=["POST"]),
            Route("/label/{serial}.png", label_png),
            Route("/label/{serial}/reprint", reprint, methods=["POST"]),
            Route("/action/{name}", run_action, methods=["POST"]),
            Route("/snapshot", snapshot),
            Route("/events", events),
            Mount("/static", StaticFiles(packages=[("ate.ui", "static")]), name="static"),
        ]
    )
    app.state.remote = remote
    return app


class PageServer:
    """The page on uvicorn, in the caller's event loop (the station's)."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], *, tls: bool) -> None:
        self.server, self.task = server, task
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"{'https' if tls else 'http'}://{host}:{port}/"

    async def close(self) -> None:
        self.server.should_exit = True
        # Event streams never end by themselves: uvicorn cancels them at a forced exit.
        self.server.force_exit = True
        await self.task


async def start_page(
    app: Starlette,
    host: str = LOOPBACK,
    port: int = 0,
    *,
    tls: tuple[Path, Path] | None = None,
) -> PageServer:
    """Serve `app` on host:port (0: any free port) until `close()`; over HTTPS with
    `tls` (certificate chain, private key: PEM files)."""
    check_bind(host, bool(app.state.remote))
    if app.state.remote and tls is None:
        raise ValueError(f"operator page on {host}: beyond loopback only over HTTPS (tls)")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    # uvicorn offers no "started" event; a failed bind ends the task instead.
    while not server.started:
        if task.done():
            await task
            raise OSError(f"operator page: could not listen on {host}:{port}")
        await asyncio.sleep(0.01)
    return PageServer(server, task, tls=tls is not None)
