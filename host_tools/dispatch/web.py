"""HTTP layer of the console: a Starlette app served by uvicorn. Static assets from the package,
a JSON API, SSE live updates.

Sessions are an HttpOnly SameSite=Strict cookie; every POST also needs the session's CSRF
token in the X-CSRF-Token header and a JSON body. Nothing is served to anonymous users but
the login page and its assets.

The same process ingests SOS alerts, so no client may be able to stall it: request bodies are
bounded and must arrive in time, a request's headers must arrive within HEADER_TIMEOUT_S of its
first byte, idle keep-alive connections are closed, TLS handshakes run in the event loop (never
in an accept loop), password hashing runs on a small fixed pool of workers with a bounded queue,
and the login throttle (users.LoginThrottle) is decided before any hashing.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import math
import mimetypes
import os
import queue
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlparse

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from .console import Console, Refused
from .export import to_geojson, to_gpx
from .users import MAX_NAME, MAX_PASSWORD, LoginThrottle, Sessions, Users

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "re_session"
DEVICE_COOKIE = "re_device"  # "this browser has logged in to this account before" (users.LoginThrottle)
MAX_BODY = 64 * 1024
MAX_BODY_DEPTH = 8
BODY_TIMEOUT_S = 10.0
HEADER_TIMEOUT_S = 10.0
KEEPALIVE_S = 5
SSE_KEEPALIVE_S = 10.0
SESSION_CHECK_S = 1.0  # a live-update stream checks its session (account disabled, role changed) this often
MAX_CONNECTIONS = 1000  # beyond this uvicorn answers 503 (memory stays bounded)
MAX_HEADER_BYTES = 16 * 1024
# Argon2id uses 4 lanes and 64 MiB per hash: one hash at a time already keeps 2 cores busy.
HASH_WORKERS = max(1, min(4, (os.cpu_count() or 2) // 2))
MAX_LOGIN_QUEUE = 64  # logins waiting for a hashing worker; beyond it: 503, try again
HSTS = "max-age=31536000"


def _clean(o):
    """JSON has no Infinity/NaN: send null."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [_clean(v) for v in o]
    return o


def dumps(obj) -> bytes:
    return json.dumps(_clean(obj), separators=(",", ":")).encode()


def _too_deep(obj, limit: int) -> bool:
    """Nesting deeper than limit (iterative: a hostile body cannot exhaust the stack here)."""
    stack = [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d >= limit:
                return True
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return False


def attachment(unit: str, ext: str) -> str:
    """A Content-Disposition whose file name cannot carry quotes, CR/LF or other header syntax."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", unit)[:64].strip(".") or "track"
    return f"attachment; filename=\"{safe}.{ext}\"; filename*=UTF-8''{quote(unit[:64], safe='')}.{ext}"


def json_response(obj, status: int = 200, headers: dict | None = None) -> Response:
    return Response(dumps(obj), status, headers=headers, media_type="application/json")


def error(status: int, msg: str, headers: dict | None = None) -> Response:
    return json_response({"error": msg}, status, headers)


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline on a request's headers, counted from the connection
    (or, on a kept-alive connection, from the next request's first byte). uvicorn itself closes
    idle kept-alive connections but waits forever for headers that trickle in (slowloris)."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            if self._deadline is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()  # uvicorn's keep-alive timer takes over until the next byte

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class SecurityHeaders:
    """ASGI middleware: the same security headers on every response, errors included."""

    def __init__(self, app, headers: list[tuple[bytes, bytes]]) -> None:
        self.app, self.headers = app, headers

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ConsoleApp:
    """The console's routes. `app` is the ASGI application."""

    def __init__(self, console: Console, users: Users, sessions: Sessions | None = None, secure: bool = False) -> None:
        self.console, self.users = console, users
        self.sessions = sessions or Sessions()
        self.throttle = LoginThrottle()
        self.secure = secure
        self.stopping = False
        self.hasher = ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="dispatch-login")
        self.logins_waiting = 0
        self._sse_wakers: set = set()
        self._sse_lock = threading.Lock()
        G, P = ["GET"], ["POST"]
        from .web_admin import AdminRoutes  # it uses this module's helpers

        routes = [
            Route("/favicon.ico", lambda r: self._static("favicon.svg"), methods=G),
            Route("/", lambda r: self._static("index.html"), methods=G),
            Route("/index.html", lambda r: self._static("index.html"), methods=G),
            Route("/static/{rel:path}", lambda r: self._static(r.path_params["rel"]), methods=G),
            Route("/api/me", self.me, methods=G),
            Route("/api/snapshot", self.snapshot, methods=G),
            Route("/api/events", self.events, methods=G),
            Route("/api/audit", self.audit, methods=G),
            Route("/api/incidents/{iid:int}/rank", self.rank, methods=G),
            Route("/api/track", self.track, methods=G),
            Route("/api/devices/{dev}", self.device, methods=G),
            Route("/api/login", self.login, methods=P),
            Route("/api/logout", self.logout, methods=P),
            Route("/api/sos/ack", self.sos_ack, methods=P),
            Route("/api/incidents", self.incident_create, methods=P),
            Route("/api/dispatch", self.dispatch, methods=P),
            # the incident lifecycle (incidents.py): detail + timeline, notes, close with a summary, units cleared
            Route("/api/incidents/{iid:int}", self.incident_detail, methods=G),
            Route("/api/incidents/{iid:int}/note", self.incident_action("note", "text"), methods=P),
            Route("/api/incidents/{iid:int}/close", self.incident_action("close", "summary"), methods=P),
            Route("/api/dispatch/{did:int}/clear", self.dispatch_end("clear"), methods=P),
            Route("/api/dispatch/{did:int}/cancel", self.dispatch_end("cancel"), methods=P),
            Route("/api/sign", self.sign, methods=P),
            *AdminRoutes(self).routes(),  # accounts (supervisor) and reports: web_admin.py
        ]
        # events and alarms (events_api.py): the event log, the alarm list, acknowledgements
        from . import events_api

        routes += events_api.routes(self)
        tiles = console.tile_url
        img = "'self' data:" + (" " + urlparse(tiles).scheme + "://" + urlparse(tiles).netloc if tiles else "")
        headers = {"Content-Security-Policy": f"default-src 'self'; img-src {img}; style-src 'self' 'unsafe-inline'; "
                                              "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                   "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
        if secure:
            headers["Strict-Transport-Security"] = HSTS
        starlette = Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})
        self.app = SecurityHeaders(starlette, [(k.lower().encode(), v.encode()) for k, v in headers.items()])

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error(status, "not found" if status == 404 else "method not allowed" if status == 405 else "error")

    def close(self) -> None:
        """Ends every live-update stream (uvicorn waits for open responses when it stops)."""
        self.stopping = True
        with self._sse_lock:
            wakers = list(self._sse_wakers)
        for w in wakers:
            w()
        self.hasher.shutdown(wait=False, cancel_futures=True)

    def cookie(self, value: str, max_age: int | None = None, name: str = COOKIE, path: str = "/") -> str:
        c = f"{name}={value}; Path={path}; HttpOnly; SameSite=Strict"
        if max_age is not None:
            c += f"; Max-Age={max_age}"
        return c + ("; Secure" if self.secure else "")

    def _session(self, request: Request) -> dict | None:
        # held against the accounts store on every request: a disabled or re-roled account counts at once
        return self.sessions.current(request.cookies.get(COOKIE), self.users)

    # -- request bodies -------------------------------------------------------------
    async def _body(self, request: Request) -> dict:
        n = request.headers.get("content-length")
        if n is not None and (not n.isdigit() or int(n) > MAX_BODY):  # refused before reading a byte
            raise Refused(413 if n.isdigit() else 400, "request too large" if n.isdigit() else "bad Content-Length")
        if not (request.headers.get("content-type") or "").startswith("application/json"):
            raise Refused(415, "JSON body required")
        raw = bytearray()
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                async for chunk in request.stream():
                    raw += chunk
                    if len(raw) > MAX_BODY:
                        raise Refused(413, "request too large")
        except TimeoutError:
            raise Refused(408, "request body too slow") from None
        except ClientDisconnect:
            raise Refused(400, "client went away") from None
        try:
            d = json.loads(bytes(raw) or b"{}")
        except (ValueError, RecursionError):
            raise Refused(400, "invalid JSON") from None
        if not isinstance(d, dict):
            raise Refused(400, "JSON object required")
        if _too_deep(d, MAX_BODY_DEPTH):
            raise Refused(400, "JSON nested too deep")
        return d

    async def _operator(self, request: Request, what: str) -> tuple[dict, dict]:
        """The session and body of an operator's POST: logged in, right CSRF token (audited when
        wrong), a bounded JSON object."""
        sess = self._session(request)
        if not sess:
            raise Refused(401, "log in first")
        if not hmac.compare_digest(request.headers.get("x-csrf-token", ""), sess["csrf"]):
            await run_in_threadpool(self.console.audit, sess, what, "-", {}, "refused: bad CSRF token")
            raise Refused(403, "missing or wrong CSRF token")
        return sess, await self._body(request)

    @staticmethod
    async def _answer(call, *args) -> Response:
        """Run a console call (SQLite, MQTT: blocking) on a worker thread; its refusal becomes the answer."""
        try:
            return json_response(await run_in_threadpool(call, *args))
        except Refused as e:
            return error(e.status, str(e))
        except (KeyError, ValueError, TypeError) as e:
            return error(400, f"bad request: {e}")

    # -- GET ----------------------------------------------------------------------
    def _static(self, rel: str) -> Response:
        p = (STATIC / rel).resolve()
        if STATIC.resolve() not in p.parents or not p.is_file():
            if rel.startswith("vendor/"):
                return error(404, "console assets missing: run `python -m host_tools.dispatch.assets`")
            return error(404, "not found")
        ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        return Response(p.read_bytes(), headers={"Content-Type": ctype})

    async def me(self, request: Request) -> Response:
        sess = self._session(request)
        if not sess:  # not an error: the page asks before showing the login form
            return json_response({"user": None})
        return json_response({"user": sess["user"], "role": sess["role"], "csrf": sess["csrf"]})

    def _viewer(self, request: Request) -> dict:
        sess = self._session(request)
        if not sess:
            raise Refused(401, "log in first")
        return sess

    async def snapshot(self, request: Request) -> Response:
        try:
            self._viewer(request)
        except Refused as e:
            return error(e.status, str(e))
        return await self._answer(self.console.snapshot)

    async def audit(self, request: Request) -> Response:
        try:
            self._viewer(request)
            limit = max(1, min(1000, int(request.query_params.get("limit", 200))))
        except Refused as e:
            return error(e.status, str(e))
        except ValueError as e:
            return error(400, f"bad request: {e}")
        return await self._answer(self.console.store.audit, limit)

    async def rank(self, request: Request) -> Response:
        try:
            sess = self._viewer(request)
        except Refused as e:
            return error(e.status, str(e))
        return await self._answer(self.console.rank, sess, request.path_params["iid"])

    async def device(self, request: Request) -> Response:
        try:
            self._viewer(request)
        except Refused as e:
            return error(e.status, str(e))
        return await self._answer(self.console.device_detail, request.path_params["dev"][:64])

    async def track(self, request: Request) -> Response:
        q = request.query_params
        try:
            self._viewer(request)
            unit = q["unit"]
            t_from, t_to = float(q.get("from", 0)), float(q.get("to", time.time() + 86400))
            pts = await run_in_threadpool(self.console.track, unit, t_from, t_to)
        except Refused as e:
            return error(e.status, str(e))
        except (KeyError, ValueError) as e:
            return error(400, f"bad request: {e}")
        fmt = q.get("format", "json")
        if fmt == "gpx":
            return Response(to_gpx(unit, pts).encode(), headers={"Content-Type": "application/gpx+xml",
                                                                 "Content-Disposition": attachment(unit, "gpx")})
        if fmt == "geojson":
            return Response(dumps(to_geojson(unit, pts)), headers={"Content-Type": "application/geo+json",
                                                                   "Content-Disposition": attachment(unit, "geojson")})
        return json_response(pts)

    async def events(self, request: Request) -> Response:
        try:
            sess = self._viewer(request)
        except Refused as e:
            return error(e.status, str(e))
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:  # called from the ingest thread: hand over to the event loop
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has closed
                pass

        bus = self.console.bus
        q = bus.subscribe(notify)
        with self._sse_lock:
            self._sse_wakers.add(notify)

        async def stream():
            role, quiet_since = sess["role"], time.monotonic()
            try:
                yield b"retry: 1000\n\n"
                while not self.stopping:
                    # the stream follows the account too: it ends (after telling the page) once the session
                    # is refused, and says so when the role changed
                    now = self._session(request)
                    if now is None or now["role"] != role:
                        yield b"event: session\ndata: " + dumps({"ended": now is None, "role": now and now["role"]}) \
                            + b"\n\n"
                        if now is None:
                            break
                        role = now["role"]
                    try:
                        kind, data = q.get_nowait()
                    except queue.Empty:
                        wake.clear()
                        if q.empty() and not self.stopping:
                            try:
                                await asyncio.wait_for(wake.wait(), SESSION_CHECK_S)
                            except TimeoutError:
                                if time.monotonic() - quiet_since >= SSE_KEEPALIVE_S:
                                    quiet_since = time.monotonic()
                                    yield b": keepalive\n\n"
                        continue
                    quiet_since = time.monotonic()
                    yield b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n"
            finally:
                bus.unsubscribe(q)
                with self._sse_lock:
                    self._sse_wakers.discard(notify)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    # -- POST: login ------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        try:
            body = await self._body(request)
        except Refused as e:
            return error(e.status, str(e))
        user, pw = str(body.get("user", ""))[:MAX_NAME], str(body.get("password", ""))
        addr = request.client.host if request.client else "-"
        store = self.console.store
        device = self.throttle.trusted(request.cookies.get(DEVICE_COOKIE), user)
        if self.logins_waiting >= MAX_LOGIN_QUEUE:
            return error(503, "too many logins at once; try again in a moment", {"Retry-After": "2"})
        wait = self.throttle.admit(user, addr, device)  # decides and reserves in one step: no race
        if wait:
            await run_in_threadpool(store.add_audit, user, None, "login", user, {"from": addr},
                                    "refused: too many failures")
            secs = math.ceil(wait)
            return error(429, f"too many failed logins; try again in {secs} s", {"Retry-After": str(secs)})
        self.logins_waiting += 1
        ok = None
        try:
            acct = None
            if len(pw) <= MAX_PASSWORD:
                acct = await asyncio.get_running_loop().run_in_executor(self.hasher, self.users.login, user, pw)
            ok = acct is not None and not acct["disabled"]
        finally:
            self.logins_waiting -= 1
            self.throttle.done(user, addr, device, ok)  # ok None: cancelled, decided nothing
        if not ok or acct is None:
            # the same answer for a disabled account: the password being right is not told
            why = "refused: account disabled" if acct else self.users.unreadable or "refused: bad credentials"
            await run_in_threadpool(store.add_audit, user, None, "login", user, {"from": addr}, why[:200])
            return error(401, "wrong user name or password")
        role = acct["role"]
        sess = self.sessions.create(user, role, acct["epoch"])
        await run_in_threadpool(store.add_audit, user, role, "login", user, {"from": addr}, "ok")
        r = json_response({"user": user, "role": role, "csrf": sess["csrf"]})
        r.headers.append("Set-Cookie", self.cookie(sess["token"]))
        r.headers.append("Set-Cookie", self.cookie(self.throttle.device_cookie(user), LoginThrottle.DEVICE_COOKIE_S,
                                                   DEVICE_COOKIE, "/api/login"))
        return r

    # -- POST: operator actions (each: session + CSRF + body, then the console decides) -----------
    async def logout(self, request: Request) -> Response:
        try:
            sess, _ = await self._operator(request, "/api/logout")
        except Refused as e:
            return error(e.status, str(e))
        self.sessions.drop(sess["token"])
        await run_in_threadpool(self.console.audit, sess, "logout", sess["user"], {}, "ok")
        return json_response({"ok": True}, headers={"Set-Cookie": self.cookie("", 0)})

    async def sos_ack(self, request: Request) -> Response:
        try:
            sess, body = await self._operator(request, "/api/sos/ack")
        except Refused as e:
            return error(e.status, str(e))
        return await self._answer(self.console.ack_sos, sess, str(body.get("unit", "")))

    async def incident_create(self, request: Request) -> Response:
        try:
            sess, body = await self._operator(request, "/api/incidents")
        except Refused as e:
            return error(e.status, str(e))
        form = {k: body.get(k) for k in ("type", "lanes", "direction", "source")}
        return await self._answer(lambda: self.console.create_incident(
            sess, body.get("lat"), body.get("lon"), body.get("priority", 3), body.get("text", ""), **form))

    async def incident_detail(self, request: Request) -> Response:
        try:
            sess = self._viewer(request)
        except Refused as e:
            return error(e.status, str(e))
        return await self._answer(self.console.desk.detail, sess, request.path_params["iid"])

    def incident_action(self, name: str, field: str):
        """POST /api/incidents/<id>/<name> {field: text} -> IncidentDesk.<name>(sess, id, text)."""
        async def handler(request: Request) -> Response:
            try:
                sess, body = await self._operator(request, request.url.path)
            except Refused as e:
                return error(e.status, str(e))
            return await self._answer(getattr(self.console.desk, name), sess, request.path_params["iid"],
                                      body.get(field))
        return handler

    def dispatch_end(self, action: str):
        """POST /api/dispatch/<id>/clear|cancel: the unit released from its incident."""
        async def handler(request: Request) -> Response:
            try:
                sess, _ = await self._operator(request, request.url.path)
            except Refused as e:
                return error(e.status, str(e))
            return await self._answer(self.console.desk.end_dispatch, sess, request.path_params["did"], action)
        return handler

    async def dispatch(self, request: Request) -> Response:
        try:
            sess, body = await self._operator(request, "/api/dispatch")
            incident, unit = int(body["incident"]), str(body["unit"])
        except Refused as e:
            return error(e.status, str(e))
        except (KeyError, ValueError, TypeError) as e:
            return error(400, f"bad request: {e}")
        return await self._answer(self.console.dispatch, sess, incident, unit)

    async def sign(self, request: Request) -> Response:
        try:
            sess, body = await self._operator(request, "/api/sign")
        except Refused as e:
            return error(e.status, str(e))
        return await self._answer(self.console.sign_op, sess, body.get("zone"), body.get("action"), body.get("sign"),
                                  body.get("limit"), body.get("reason", ""))


class ConsoleServer:
    """The console app on uvicorn in a thread of its own (its own event loop): bind, serve_forever,
    shutdown, server_close, like the standard library's servers."""

    def __init__(self, addr: tuple[str, int], console: Console, users: Users, sessions: Sessions | None = None,
                 tls: tuple[str, str] | None = None) -> None:
        self.secure = tls is not None
        self.web = ConsoleApp(console, users, sessions, self.secure)
        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.socket = socket.socket(fam, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(addr)
        self.socket.listen(512)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        config = uvicorn.Config(
            self.web.app, http=GuardedH11, lifespan="off", log_config=None, log_level="error", access_log=False,
            server_header=False, timeout_keep_alive=KEEPALIVE_S, limit_concurrency=MAX_CONNECTIONS,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=5,
            ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None)
        self.server = uvicorn.Server(config)
        self._done = threading.Event()

    def serve_forever(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self._done.set()

    def shutdown(self) -> None:
        self.web.close()
        self.server.should_exit = True
        self._done.wait(15)

    def server_close(self) -> None:
        self.socket.close()
