"""Managers' desks on a running daemon: each logs in through the login form and holds the
websocket a browser tab holds (docs/websocket.md), recording every ``call.ringing`` it is
sent. The fault suite uses them to see that pops go on while the database is away."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

import aiohttp

__all__ = ["DESK_PASSWORD", "Desks"]

DESK_PASSWORD = "fault-desk-password"


@dataclass
class Desks:
    """One logged-in manager per extension; ``ringing`` holds (extension, call) of every
    ``call.ringing`` their tabs were sent, in arrival order."""

    base: str
    ringing: list[tuple[str, str]] = field(default_factory=list)
    _sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self, logins: dict[str, str]) -> None:
        """Log each ``login`` in (extension -> login) and connect its tab; returns once every
        tab has its ``hello``, so nothing sent after this is missed."""
        for extension, login in logins.items():
            # the daemon listens on 127.0.0.1: an IP address, whose cookies the default jar refuses
            session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            self._sessions.append(session)
            form = await self._login_form(session)
            token = form.headers["X-CSRF-Token"]
            resp = await session.post(self.base + "/login", allow_redirects=False, data={
                "login": login, "password": DESK_PASSWORD, "csrf_token": token})
            if resp.status != 302:
                raise AssertionError(f"login {login}: {resp.status} {await resp.text()}")
            ws = await session.ws_connect(self.base + "/ws")
            hello = json.loads((await ws.receive(timeout=30)).data)
            if hello.get("type") != "hello" or hello["user"]["login"] != login:
                raise AssertionError(f"login {login}: expected hello, got {hello}")
            self._readers.append(asyncio.create_task(self._read(extension, ws)))

    async def _login_form(self, session: aiohttp.ClientSession) -> aiohttp.ClientResponse:
        """GET /login, waiting for the daemon's web server (it may start after its AMI login)."""
        for _ in range(600):
            try:
                return await session.get(self.base + "/login")
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.base}: the daemon's web server never answered")

    async def _read(self, extension: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "call.ringing":
                self.ringing.append((extension, data["call"]))

    def popped(self) -> set[tuple[str, str]]:
        return set(self.ringing)

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in self._sessions:
            await session.close()
