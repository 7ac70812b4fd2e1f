"""HTTP routes of the event log and the alarm list (registered by web.ConsoleApp).

  GET  /api/eventlog?type=&device=&severity=&from=&to=&acked=yes|no&alarms=1&before=<id>&limit=<n>
       newest first; {"events", "total", "next"}: pass `next` as `before` for the following page;
       &format=csv: the newest CSV_ROWS lines matching the filters as a CSV file
  GET  /api/alarms   {"alarms": active or unacknowledged alarms, worst first, "types", "severities"}
  POST /api/alarms/ack {"id", "note"?}   dispatcher or supervisor; audited (refusals too)
  POST /api/alarms/ack {"ids": [...], "note"?}   the same for a burst of one kind, each audited; never an SOS
"""
from __future__ import annotations

import csv
import io
import math
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .console import Refused
from .events import SEVERITIES, TYPES

CSV_ROWS = 10000  # one export: the newest this many lines matching the filters
CSV_COLUMNS = ("id", "at", "time_utc", "severity", "type", "phase", "device", "text", "count", "cleared_at",
               "acked_by", "acked_at")


def to_csv(rows: list[dict]) -> str:
    """The log as a spreadsheet reads it; a cell that would start a formula is quoted as text."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        at = r.get("at")
        r = {**r, "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) if isinstance(at, (int, float))
             else ""}
        w.writerow(["'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v
                    for v in (r.get(c) for c in CSV_COLUMNS)])
    return out.getvalue()


def routes(app) -> list[Route]:
    """app: the web.ConsoleApp; the service is the console's `events` (monitor.EventService)."""
    from .web import attachment, error  # web imports this module: by the time it calls routes() it is loaded

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
        if q.get("format") == "csv":
            kw["limit"] = CSV_ROWS
            rows = await run_in_threadpool(lambda: page.json(ev.log.query(**kw), ("event",))["events"])
            return Response(to_csv(rows).encode(), headers={"Content-Type": "text/csv; charset=utf-8",
                                                            "Content-Disposition": attachment("event-log", "csv")})
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
        if "ids" in body:  # a burst of one kind, acknowledged together (each audited)
            return await app._answer(ev.acknowledge_all, sess, body["ids"], body.get("note", ""))
        return await app._answer(ev.acknowledge, sess, body.get("id"), body.get("note", ""))

    return [Route("/api/eventlog", eventlog, methods=["GET"]), Route("/api/alarms", alarms, methods=["GET"]),
            Route("/api/alarms/ack", ack, methods=["POST"])]
