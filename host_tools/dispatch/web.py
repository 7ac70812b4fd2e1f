"""HTTP layer of the console: static assets from the package, a JSON API, SSE live updates.

Sessions are an HttpOnly SameSite=Strict cookie; every POST also needs the session's CSRF
token in the X-CSRF-Token header and a JSON body. Nothing is served to anonymous users but
the login page and its assets.
"""
from __future__ import annotations

import json
import math
import mimetypes
import queue
import threading
import time
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from .console import Console, Refused
from .export import to_geojson, to_gpx
from .users import Sessions, Users

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "re_session"
MAX_BODY = 64 * 1024


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, console: Console, users: Users, sessions: Sessions | None = None,
                 tls: tuple[str, str] | None = None):
        self.console, self.users = console, users
        self.sessions = sessions or Sessions()
        self.stopping = threading.Event()
        super().__init__(addr, Handler)
        self.secure = tls is not None
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(*tls)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)

    def cookie(self, value: str, max_age: int | None = None) -> str:
        c = f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"
        if max_age is not None:
            c += f"; Max-Age={max_age}"
        return c + ("; Secure" if self.secure else "")

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()


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


class Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the audit table is the record that matters
        pass

    # -- helpers ------------------------------------------------------------------
    def _headers(self, status: int, ctype: str, length: int | None, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        tiles = self.server.console.tile_url
        img = "'self' data:" + (" " + urlparse(tiles).scheme + "://" + urlparse(tiles).netloc if tiles else "")
        self.send_header("Content-Security-Policy",
                         f"default-src 'self'; img-src {img}; style-src 'self' 'unsafe-inline'; "
                         "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _send_json(self, obj, status: int = 200, extra: dict | None = None) -> None:
        body = dumps(obj)
        self._headers(status, "application/json", len(body), extra)
        self.wfile.write(body)

    def _error(self, status: int, msg: str) -> None:
        self._send_json({"error": msg}, status)

    def _session(self) -> dict | None:
        c = cookies.SimpleCookie(self.headers.get("Cookie", ""))
        return self.server.sessions.get(c[COOKIE].value if COOKIE in c else None)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise Refused(413, "request too large")
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            raise Refused(415, "JSON body required")
        try:
            d = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            raise Refused(400, "invalid JSON") from None
        if not isinstance(d, dict):
            raise Refused(400, "JSON object required")
        return d

    # -- GET ----------------------------------------------------------------------
    def do_GET(self) -> None:
        u = urlparse(self.path)
        path = u.path
        if path == "/favicon.ico":
            return self._static("favicon.svg")
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        sess = self._session()
        if path == "/api/me":
            if not sess:  # not an error: the page asks before showing the login form
                return self._send_json({"user": None})
            return self._send_json({"user": sess["user"], "role": sess["role"], "csrf": sess["csrf"]})
        if not sess:
            return self._error(401, "log in first")
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        c = self.server.console
        try:
            if path == "/api/snapshot":
                return self._send_json(c.snapshot())
            if path == "/api/events":
                return self._sse()
            if path == "/api/audit":
                return self._send_json(c.store.audit(int(q.get("limit", 200))))
            if path.startswith("/api/incidents/") and path.endswith("/rank"):
                return self._send_json(c.rank(sess, int(path.split("/")[3])))
            if path == "/api/track":
                unit = q["unit"]
                t_from, t_to = float(q.get("from", 0)), float(q.get("to", time.time() + 86400))
                pts = c.track(unit, t_from, t_to)
                fmt = q.get("format", "json")
                if fmt == "gpx":
                    body = to_gpx(unit, pts).encode()
                    self._headers(200, "application/gpx+xml", len(body),
                                  {"Content-Disposition": f'attachment; filename="{unit}.gpx"'})
                    return self.wfile.write(body)
                if fmt == "geojson":
                    body = dumps(to_geojson(unit, pts))
                    self._headers(200, "application/geo+json", len(body),
                                  {"Content-Disposition": f'attachment; filename="{unit}.geojson"'})
                    return self.wfile.write(body)
                return self._send_json(pts)
        except Refused as e:
            return self._error(e.status, str(e))
        except (KeyError, ValueError) as e:
            return self._error(400, f"bad request: {e}")
        return self._error(404, "not found")

    def _static(self, rel: str) -> None:
        p = (STATIC / rel).resolve()
        if STATIC.resolve() not in p.parents or not p.is_file():
            if rel.startswith("vendor/"):
                return self._error(404, "console assets missing: run `python -m host_tools.dispatch.assets`")
            return self._error(404, "not found")
        data = p.read_bytes()
        ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        self._headers(200, ctype, len(data))
        self.wfile.write(data)

    def _sse(self) -> None:
        bus = self.server.console.bus
        q = bus.subscribe()
        try:
            self._headers(200, "text/event-stream", None, {"Connection": "keep-alive"})
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not self.server.stopping.is_set():
                try:
                    kind, data = q.get(timeout=10)
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    continue
                self.wfile.write(b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            bus.unsubscribe(q)
            self.close_connection = True

    # -- POST ----------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urlparse(self.path).path
        c = self.server.console
        try:
            if path == "/api/login":
                return self._login(self._body())
            sess = self._session()
            if not sess:
                return self._error(401, "log in first")
            import hmac

            if not hmac.compare_digest(self.headers.get("X-CSRF-Token", ""), sess["csrf"]):
                c.audit(sess, path, "-", {}, "refused: bad CSRF token")
                return self._error(403, "missing or wrong CSRF token")
            body = self._body()
            if path == "/api/logout":
                self.server.sessions.drop(sess["token"])
                c.audit(sess, "logout", sess["user"], {}, "ok")
                return self._send_json({"ok": True}, extra={"Set-Cookie": self.server.cookie("", 0)})
            if path == "/api/sos/ack":
                return self._send_json(c.ack_sos(sess, str(body.get("unit", ""))))
            if path == "/api/incidents":
                return self._send_json(c.create_incident(sess, body.get("lat"), body.get("lon"),
                                                         body.get("priority", 3), body.get("text", "")))
            if path.startswith("/api/incidents/") and path.endswith("/close"):
                return self._send_json(c.close_incident(sess, int(path.split("/")[3])))
            if path == "/api/dispatch":
                return self._send_json(c.dispatch(sess, int(body["incident"]), str(body["unit"])))
            if path == "/api/sign":
                return self._send_json(c.sign_op(sess, body.get("zone"), body.get("action"), body.get("sign"),
                                                 body.get("limit"), body.get("reason", "")))
        except Refused as e:
            return self._error(e.status, str(e))
        except (KeyError, ValueError, TypeError) as e:
            return self._error(400, f"bad request: {e}")
        return self._error(404, "not found")

    def _login(self, body: dict) -> None:
        user, pw = str(body.get("user", ""))[:64], str(body.get("password", ""))[:256]
        s, c = self.server.sessions, self.server.console
        if s.throttled(user):
            c.store.add_audit(user, None, "login", user, {}, "refused: too many failures")
            return self._error(429, "too many failed logins; wait 5 minutes")
        role = self.server.users.verify(user, pw)
        if not role:
            s.failed(user)
            c.store.add_audit(user, None, "login", user, {}, "refused: bad credentials")
            return self._error(401, "wrong user name or password")
        sess = s.create(user, role)
        c.store.add_audit(user, role, "login", user, {}, "ok")
        self._send_json({"user": user, "role": role, "csrf": sess["csrf"]},
                        extra={"Set-Cookie": self.server.cookie(sess["token"])})
