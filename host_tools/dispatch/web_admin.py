"""HTTP routes for account management (a supervisor's, accounts.py) and reports (any logged-in
user, reports.py / reports_db.py), registered by web.ConsoleApp.

Same rules as the console's other routes: every POST needs the session's CSRF token and a JSON
body; the permission check and the audit record happen below the HTTP layer. Setting a password
hashes it (Argon2id, 64 MiB) on the login pool, so memory stays bounded however many arrive.
"""
from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import reports as R
from .accounts import AccountAdmin
from .console import Refused
from .export import to_csv
from .reports_db import MAX_DAYS, build_days
from .web import attachment, error, json_response

if TYPE_CHECKING:
    from .web import ConsoleApp


class AdminRoutes:
    def __init__(self, app: ConsoleApp) -> None:
        self.app = app
        self.admin = AccountAdmin(app.console, app.users, app.sessions)
        sc = app.console.sc
        self.sections = R.Section.from_scenario(sc) if sc else []
        # a report is seconds of Python for a city fleet: one at a time, so ingest keeps its share of the CPU
        self._reporting = threading.Lock()

    def routes(self) -> list[Route]:
        G, P = ["GET"], ["POST"]
        return [
            Route("/api/accounts", self.accounts, methods=G),
            Route("/api/accounts", self.add, methods=P),
            Route("/api/accounts/{name}/role", self.role, methods=P),
            Route("/api/accounts/{name}/enabled", self.enabled, methods=P),
            Route("/api/accounts/{name}/password", self.password, methods=P),
            Route("/api/reports", self.report, methods=G),
            Route("/api/reports/{table}.csv", self.report_csv, methods=G),
        ]

    # -- accounts -------------------------------------------------------------------------
    async def _hashing(self, call, *args) -> Response:
        """A call that hashes a password, on the bounded hashing pool."""
        try:
            return json_response(await asyncio.get_running_loop().run_in_executor(self.app.hasher, call, *args))
        except Refused as e:
            return error(e.status, str(e))

    async def accounts(self, request: Request) -> Response:
        try:
            sess = self.app._viewer(request)
        except Refused as e:
            return error(e.status, str(e))
        return await self.app._answer(self.admin.list, sess)

    async def add(self, request: Request) -> Response:
        try:
            sess, body = await self.app._operator(request, "/api/accounts")
        except Refused as e:
            return error(e.status, str(e))
        return await self._hashing(self.admin.add, sess, body.get("name"), body.get("role"), body.get("password"))

    async def role(self, request: Request) -> Response:
        try:
            sess, body = await self.app._operator(request, request.url.path)
        except Refused as e:
            return error(e.status, str(e))
        return await self.app._answer(self.admin.set_role, sess, request.path_params["name"], body.get("role"))

    async def enabled(self, request: Request) -> Response:
        try:
            sess, body = await self.app._operator(request, request.url.path)
        except Refused as e:
            return error(e.status, str(e))
        return await self.app._answer(self.admin.set_enabled, sess, request.path_params["name"],
                                      body.get("enabled"))

    async def password(self, request: Request) -> Response:
        try:
            sess, body = await self.app._operator(request, request.url.path)
        except Refused as e:
            return error(e.status, str(e))
        return await self._hashing(self.admin.set_password, sess, request.path_params["name"], body.get("password"))

    # -- reports --------------------------------------------------------------------------
    def _query(self, request: Request) -> tuple[str, int, int]:
        q = request.query_params
        try:
            return q["day"], int(q.get("days", 1)), int(q.get("tz", 0))
        except KeyError:
            raise Refused(400, "day=YYYY-MM-DD required") from None
        except ValueError:
            raise Refused(400, f"days (1..{MAX_DAYS}) and tz (minutes east of UTC) are whole numbers") from None

    def _build_one_at_a_time(self, *args) -> list[dict]:
        with self._reporting:
            return build_days(*args)

    async def _build(self, day: str, days: int, tz: int) -> list[dict]:
        try:
            return await run_in_threadpool(self._build_one_at_a_time, self.app.console.store.path, self.sections, day,
                                           days, tz)
        except ValueError as e:
            raise Refused(400, f"bad request: {e}") from None

    async def report(self, request: Request) -> Response:
        try:
            self.app._viewer(request)
            day, days, tz = self._query(request)
            reps = await self._build(day, days, tz)
        except Refused as e:
            return error(e.status, str(e))
        return json_response({"days": [{"day": r["day"], "until": r["until"],
                                        **{t: R.table(r, t, tz) for t in R.TABLES},
                                        "stops": {u["unit"]: u["stop_list"] for u in r["units"]},
                                        "truncated_units": r["truncated_units"]} for r in reps],
                              "columns": R.TABLES, "sections": [s.id for s in self.sections]})

    async def report_csv(self, request: Request) -> Response:
        name = request.path_params["table"]
        try:
            sess = self.app._viewer(request)
            if name not in R.TABLES:
                raise Refused(404, f"reports: {', '.join(R.TABLES)}")
            day, days, tz = self._query(request)
            reps = await self._build(day, days, tz)
        except Refused as e:
            return error(e.status, str(e))
        rows = [row for r in reps for row in R.table(r, name, tz)]
        # who took which officers' movements out of the console is part of the record
        await run_in_threadpool(self.app.console.audit, sess, "report_export", name,
                                {"day": day, "days": days, "rows": len(rows)}, "ok")
        return Response(to_csv(R.TABLES[name], rows).encode(),
                        headers={"Content-Type": "text/csv; charset=utf-8",
                                 "Content-Disposition": attachment(f"{name}-{day}", "csv")})
