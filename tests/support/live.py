"""Helpers for the live-pop tests (push, pipeline, websocket, app): a real app on a real
port, logged-in HTTP clients and websocket tabs, seeded employees and clients."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callpop.accounts import hash_password
from callpop.pipeline import PIPELINE, Pipeline
from callpop.server.keys import AMI
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Client, ClientPhone, Employee, Extension, Note, Promise
from callpop.store_hooks import StoreHooks
from tests.support.ami import wait_until

PASSWORD = "correct horse battery"
HttpClient = TestClient[web.Request, web.Application]

# Minimal stand-ins for the desk's templates: these tests are about the server's behaviour,
# not the markup (test_app.py renders the real templates).
_FALLBACK_TEMPLATES = {
    "login.html": '<form method="post" action="/login"><input type="hidden" name="csrf_token" '
                  'value="{{ csrf_token }}"><input name="next" value="{{ next }}">'
                  '{% if error %}<p class="error">{{ error }}</p>{% endif %}</form>',
    "desk.html": '<main data-user="{{ user.login }}" data-ws="{{ ws_path }}"></main>',
}


def templates_dir(tmp_path: Path) -> Path:
    """A directory with the stand-in templates."""
    d = tmp_path / "templates"
    d.mkdir(exist_ok=True)
    for name, text in _FALLBACK_TEMPLATES.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 costs ~0.3 s: once per test run, not per employee


async def add_employee(db: Database, login: str, extensions: Sequence[str] = (), role: str = "manager",
                       name: str | None = None) -> int:
    async with db.sessions() as session:
        emp = Employee(login=login, name=name or login.title(), role=role, password_hash=_password_hash())
        session.add(emp)
        await session.flush()
        for ext in extensions:
            session.add(Extension(extension=ext, employee_id=emp.id))
        await session.commit()
        return emp.id


async def add_client(db: Database, name: str, phone: str, *, promise: str | None = None,
                     note: str | None = None, responsible_id: int | None = None, company: str | None = None) -> int:
    from callpop.phones import phone_key

    key = phone_key(phone)
    now = dt.datetime.now(dt.UTC)
    async with db.sessions() as session:
        client = Client(name=name, company=company, responsible_id=responsible_id, status="regular")
        session.add(client)
        await session.flush()
        session.add(ClientPhone(client_id=client.id, raw=phone, e164=key.e164, tail10=key.tail10))
        if promise:
            session.add(Promise(client_id=client.id, text=promise, due_at=now - dt.timedelta(days=1),
                                made_by_id=responsible_id))
        if note:
            session.add(Note(client_id=client.id, text=note, author_id=responsible_id))
        await session.commit()
        return client.id


@dataclass
class Recorder:
    """Store hooks that count lookups and record journal calls (real lookup underneath;
    with ``real_journal`` the real journal and contact logging too)."""

    lookups: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    fail_lookup: bool = False
    lookup_delay: float = 0.0
    real_journal: bool = False
    # when set, every lookup waits for it: a test decides when lookups finish
    gate: asyncio.Event | None = None
    finished: list[str] = field(default_factory=list)

    _started: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def started(self, count: int, within: float = 3.0) -> None:
        """Wait until *count* lookups have started (however many finished)."""
        async with self._started:
            await asyncio.wait_for(self._started.wait_for(lambda: len(self.lookups) >= count), within)

    def hooks(self) -> StoreHooks:
        real = StoreHooks.default()

        async def lookup(session: Any, number: str, settings: Settings) -> Any:
            self.lookups.append(number)
            async with self._started:
                self._started.notify_all()
            if self.lookup_delay:
                await asyncio.sleep(self.lookup_delay)
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_lookup:
                raise RuntimeError("database is down (test)")
            try:
                return await real.lookup(session, number, settings)
            finally:
                self.finished.append(number)

        async def open_call(session: Any, pbx_id: str, event: Any, client_id: int | None) -> int:
            self.opened.append(event.call)
            if self.real_journal:
                return await real.open_call(session, pbx_id, event, client_id)
            return 1000 + len(self.opened)

        async def close_call(session: Any, pbx_id: str, event: Any, client_id: int | None,
                             by_ext: dict[str, int]) -> int:
            self.closed.append(event.call)
            if self.real_journal:
                return await real.close_call(session, pbx_id, event, client_id, by_ext)
            return 1000 + len(self.opened)

        return StoreHooks(lookup=lookup, open_call=open_call, close_call=close_call,
                          employees_by_extension=real.employees_by_extension,
                          log_contacts=real.log_contacts if self.real_journal else None)


@dataclass
class Live:
    """A started app: HTTP client factory and the pipeline to feed events into."""

    server: TestServer
    app: web.Application
    clients: list[HttpClient] = field(default_factory=list)
    sessions: dict[str, HttpClient] = field(default_factory=dict)
    tabs: list[Tab] = field(default_factory=list)

    @property
    def pipeline(self) -> Pipeline:
        return self.app[PIPELINE]

    async def client(self) -> HttpClient:
        c: HttpClient = TestClient(self.server)
        await c.start_server()
        self.clients.append(c)
        return c

    async def login(self, login: str, password: str = PASSWORD) -> HttpClient:
        c = await self.client()
        page = await c.get("/login")
        token = page.headers["X-CSRF-Token"]
        resp = await c.post("/login", data={"login": login, "password": password, "csrf_token": token},
                            allow_redirects=False)
        assert resp.status == 302, await resp.text()
        return c

    async def tab(self, login: str) -> Tab:
        """A websocket tab of *login* (tabs of one user share one login, like a browser)."""
        c = self.sessions.get(login)
        if c is None:
            c = self.sessions[login] = await self.login(login)
        tab = Tab(await c.ws_connect("/ws"))
        self.tabs.append(tab)
        return tab

    async def close(self) -> None:
        for t in self.tabs:
            await t.ws.close()
        for c in self.clients:
            await c.close()
        await self.server.close()


@dataclass
class Tab:
    ws: aiohttp.ClientWebSocketResponse

    async def next(self, wait: float = 3.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=wait)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def until(self, kind: str, wait: float = 3.0) -> dict[str, Any]:
        """The next message of type *kind*, skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            msg = await self.next(max(0.01, deadline - loop.time()))
            if msg["type"] == kind:
                return msg

    async def nothing(self, within: float = 0.3) -> None:
        """Assert no call message arrives within *within* seconds."""
        try:
            msg = await self.ws.receive(timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {msg.data if msg.type is aiohttp.WSMsgType.TEXT else msg}")

    async def start(self) -> list[dict[str, Any]]:
        """hello then snapshot: returns the snapshot's calls."""
        hello = await self.next()
        assert hello["type"] == "hello", hello
        snap = await self.next()
        assert snap["type"] == "snapshot", snap
        calls: list[dict[str, Any]] = snap["calls"]
        return calls


StartLive = Callable[..., Awaitable[Live]]
"""The ``start_live`` fixture: ``await start_live(settings=None, *, store=None, real_templates=False,
start_ami=False, **create_app_kwargs)`` starts the real app on a test port; it is closed after the test."""


async def ami_logged_in(app: web.Application) -> None:
    """Wait until the app's AMI connection has logged in to the (simulated) PBX."""
    def logged_in() -> bool:
        ami = app.get(AMI)
        return ami is not None and ami.state == "logged_in"

    await wait_until(logged_in, what="the AMI login to the simulated PBX")
