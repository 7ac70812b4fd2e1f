"""HTTP routes of the event log and the alarm list (registered by web.ConsoleApp).

  GET  /api/eventlog?type=&device=&severity=&from=&to=&acked=yes|no&alarms=1&before=<id>&limit=<n>
       newest first; {"events", "total", "next"}: pass `next` as `before` for the following page
  GET  /api/alarms   {"alarms": active or unacknowledged alarms, worst first, "types", "severities"}
  POST /api/alarms/ack {"id", "note"?}   dispatcher or supervisor; audited (refusals too)
"""
from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .console import Refused
from .events import SEVERITIES, TYPES


def routes(app) -> list[Route]:
    """app: the web.ConsoleApp; the service is the console's `events` (monitor.EventService)."""
    from .web import error  # web imports this module: by the time it calls routes() it is loaded

    def service():
        ev = getattr(app.console, "events", None)
        if ev is None:
            raise Refused(503, "the event log is not running")
        return ev

    def _float(q, name: str):
        v = q.get(name)
        if v in (None, ""):
            return None
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"{name} must be a time (unix s)")
        return f

    async def eventlog(request: Request) -> Response:
        q = request.query_params
        try:
            app._viewer(request)
            ev = service()
            acked = {"yes": True, "no": False}.get(q.get("acked", ""))
            before = int(q["before"]) if q.get("before") else None
            kw = dict(type_=q.get("type") or None, device=q.get("device") or None,
                      severity=q.get("severity") or None, t_from=_float(q, "from"), t_to=_float(q, "to"),
                      acked=acked, alarms_only=q.get("alarms") in ("1", "yes"), before=before,
                      limit=int(q.get("limit", 50)))
        except Refused as e:
            return error(e.status, str(e))
        except ValueError as e:
            return error(400, f"bad request: {e}")
        page = app.console.page
        return await app._answer(lambda: page.json(ev.log.query(**kw), ("event",)))

    async def alarms(request: Request) -> Response:
        try:
            app._viewer(request)
            ev = service()
        except Refused as e:
            return error(e.status, str(e))
        page = app.console.page
        return await app._answer(lambda: {"alarms": page.json(ev.log.alarms(), ("event",)),
                                          "types": {k: v[0] for k, v in TYPES.items()},
                                          "severities": list(SEVERITIES)})

    async def ack(request: Request) -> Response:
        try:
            sess, body = await app._operator(request, "/api/alarms/ack")
            ev = service()
        except Refused as e:
            return error(e.status, str(e))
        return await app._answer(ev.acknowledge, sess, body.get("id"), body.get("note", ""))

    return [Route("/api/eventlog", eventlog, methods=["GET"]), Route("/api/alarms", alarms, methods=["GET"]),
            Route("/api/alarms/ack", ack, methods=["POST"])]
