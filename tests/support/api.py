"""A small real application for the API tests: the auth middleware, the declared API
endpoints, a fake PBX that records Originate actions, and one logged-in HTTP client per
employee (each with its own cookie jar and CSRF token)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from callpop.accounts import hash_password
from callpop.server.auth import auth_middleware, login_user
from callpop.server.keys import AMI, DB, EXTRA, SECRET, SETTINGS
from callpop.server.middleware import error_middleware
from callpop.server.routes import API_ROUTES as ENDPOINTS
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Employee, Extension

PASSWORD_HASH = hash_password("pw")  # argon2 is slow on purpose: hash once per test session


@dataclass
class FakeAmi:
    """Stands in for AmiConnection.originate; ``fail`` makes the PBX refuse."""

    calls: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    fail: bool = False
    state: str = "connected"

    async def originate(self, channel: str, exten: str, context: str, caller_id: str | None = None,
                        variables: tuple[tuple[str, str], ...] = ()) -> None:
        if self.fail:
            raise RuntimeError("Asterisk refused Originate")
        self.calls.append((channel, exten, context, caller_id))


async def _test_login(request: web.Request) -> web.StreamResponse:
    response = web.json_response({"ok": True})
    login_user(request, response, int(request.match_info["uid"]))
    return response


def build_app(settings: Settings, db: Database, ami: FakeAmi | None) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware])  # as the real application
    app[SETTINGS] = settings
    app[DB] = db
    app[SECRET] = b"test-secret-key-0123456789"
    app[AMI] = ami  # type: ignore[assignment]
    app[EXTRA] = {}
    for ep in ENDPOINTS:
        app.router.add_route(ep.method, ep.path, ep.handler)
    app.router.add_get("/test-login/{uid}", _test_login)  # tests only: a session without the login form
    return app


@dataclass
class User:
    id: int
    http: aiohttp.ClientSession
    csrf: str = ""

    async def call(self, method: str, path: str, body: Any = None, *, csrf: bool = True,
                   **kwargs: Any) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf and method != "GET" else {}
        headers.update(kwargs.pop("headers", {}))
        resp = await self.http.request(method, path, json=body, headers=headers, **kwargs)
        data = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, data


async def add_employee(db: Database, login: str, *, role: str = "manager", extensions: tuple[str, ...] = (),
                       name: str | None = None) -> int:
    async with db.sessions() as s:
        emp = Employee(name=name or f"Employee {login}", login=login, password_hash=PASSWORD_HASH, role=role)
        s.add(emp)
        await s.flush()
        for ext in extensions:
            s.add(Extension(extension=ext, employee_id=emp.id))
        await s.commit()
        return emp.id


@asynccontextmanager
async def serve(settings: Settings, db: Database, ami: FakeAmi | None = None) -> AsyncIterator[TestServer]:
    server = TestServer(build_app(settings, db, ami))
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@asynccontextmanager
async def logged_in(server: TestServer, employee_id: int | None) -> AsyncIterator[User]:
    http = aiohttp.ClientSession(base_url=str(server.make_url("")), cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        user = User(employee_id or 0, http)
        if employee_id is not None:
            resp = await http.get(f"/test-login/{employee_id}")
            assert resp.status == 200
            status, me = await user.call("GET", "/api/me")
            assert status == 200, me
            user.csrf = me["csrf_token"]
        yield user
    finally:
        await http.close()
