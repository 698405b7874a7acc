"""``callpop watch --agent 101``: the pops of one agent, one line each, in a terminal.

It logs in like a browser (GET /login for the CSRF token, POST the form, keep the session
cookie), opens /ws with the ``websockets`` client and prints what the desk would show.
A supervisor may watch any agent (it asks for every call and keeps that agent's). On a
lost connection it reconnects with backoff and logs in again if the session ended; the
snapshot sent on every connect shows the calls still ringing.

Caller names come from the phone network: control characters are replaced before
printing, so a name cannot move the cursor or recolour the operator's terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callpop.settings import Settings

__all__ = ["LoginFailed", "WatchTarget", "format_pop", "main", "watch"]

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_CSRF_INPUT = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
BACKOFF_MIN, BACKOFF_MAX = 1.0, 30.0


class LoginFailed(Exception):
    """Wrong login or password (retrying will not help)."""


@dataclass(frozen=True)
class WatchTarget:
    url: str  # http://host:port
    login: str
    password: str
    agent: str


def _safe(text: object, limit: int = 80) -> str:
    s = _CONTROL.sub("?", str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def format_pop(msg: dict[str, Any], agent: str) -> str | None:
    """One terminal line for a call message about *agent*; None for anything else."""
    kind = str(msg.get("type", ""))
    if not kind.startswith("call.") or msg.get("agent") != agent:
        return None
    at = msg.get("at")
    stamp = time.strftime("%H:%M:%S", time.localtime(at if isinstance(at, int | float) else time.time()))
    event = kind.removeprefix("call.")
    parts = [stamp, f"{event:<12}", f"call={_safe(msg.get('call'), 40)}"]
    card = msg.get("card") or {}
    if card:
        number = card.get("number") or {}
        parts.append("withheld" if number.get("withheld") else _safe(number.get("display") or number.get("raw")))
        if card.get("caller_name"):
            parts.append(f'"{_safe(card["caller_name"], 60)}"')
        match = card.get("match")
        client = card.get("client")
        if match == "single" and isinstance(client, dict):
            company = f" ({_safe(client.get('company'), 60)})" if client.get("company") else ""
            promises = client.get("promises") or []
            parts.append(f"client={_safe(client.get('name'), 60)}{company} [{_safe(client.get('status'), 12)}]")
            parts.append(f"promises={len(promises)} overdue={client.get('overdue_promises', 0)}")
            if client.get("responsible"):
                parts.append(f"responsible={_safe(client['responsible'].get('name'), 40)}")
        elif match == "several":
            parts.append(f"candidates={len(card.get('candidates') or [])}")
        elif match == "none":
            parts.append("unknown number")
        elif match == "error":
            parts.append("directory unavailable")
    if kind == "call.ring_stopped":
        parts.append(f"reason={_safe(msg.get('reason'), 30)}")
    elif kind == "call.transferred":
        parts.append(f"{_safe(msg.get('from_agent'), 12)} -> {_safe(msg.get('to_agent'), 12)}")
    elif kind == "call.ended":
        # the answer or the end not seen: the talk is only the least it can have been
        unsure = ">=" if msg.get("answer_unseen") or msg.get("end_unseen") else "="
        parts.append(f"outcome={_safe(msg.get('outcome'), 12)} talk{unsure}{msg.get('talk_seconds')}s")
    return "  ".join(parts)


async def login(session: aiohttp.ClientSession, target: WatchTarget) -> None:
    """Log in over HTTP; the session's cookie jar keeps the cookie."""
    async with session.get(f"{target.url}/login") as page:
        token = page.headers.get("X-CSRF-Token")
        if not token:
            found = _CSRF_INPUT.search(await page.text())
            token = found.group(1) if found else ""
    form = {"login": target.login, "password": target.password, "csrf_token": token}
    async with session.post(f"{target.url}/login", data=form, allow_redirects=False) as resp:
        if resp.status in (401, 403):
            raise LoginFailed(f"login as {target.login!r} refused at {target.url} (HTTP {resp.status})")
        if resp.status != 302:
            raise ConnectionError(f"login at {target.url}: unexpected HTTP {resp.status}")


def _cookie_header(session: aiohttp.ClientSession) -> str:
    return "; ".join(f"{m.key}={m.value}" for m in session.cookie_jar)


async def _follow(target: WatchTarget, cookie: str, out: Callable[[str], None]) -> None:
    ws_url = target.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
    async with connect(ws_url, additional_headers={"Cookie": cookie}, proxy=None, open_timeout=10) as ws:
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "hello":
                user = msg.get("user") or {}
                mine = target.agent in (user.get("extensions") or [])
                if not mine and user.get("role") in ("supervisor", "admin"):
                    await ws.send(json.dumps({"type": "subscribe_all"}))
                elif not mine:
                    out(f"# {target.login} does not own extension {target.agent}: nothing will show")
                continue
            calls = msg.get("calls") if msg.get("type") == "snapshot" else [msg]
            for item in calls or []:
                line = format_pop(item, target.agent)
                if line:
                    out(line)
        out(f"# connection closed by the server (code {ws.close_code}, {_safe(ws.close_reason or '-', 60)}); "
            f"reconnecting")


async def watch(target: WatchTarget, out: Callable[[str], None] = print, *,
                stop: asyncio.Event | None = None) -> None:
    """Print pops until *stop* is set (or forever), reconnecting with backoff."""
    delay = BACKOFF_MIN
    stop = stop or asyncio.Event()
    jar = aiohttp.CookieJar(unsafe=True)  # callpop usually listens on an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        need_login = True
        while not stop.is_set():
            try:
                if need_login:
                    await login(session, target)
                    need_login = False
                    out(f"# logged in to {target.url} as {target.login}, watching agent {target.agent}")
                runner = asyncio.create_task(_follow(target, _cookie_header(session), out))
                stopper = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if runner not in done:
                    runner.cancel()
                    await asyncio.gather(runner, return_exceptions=True)
                    return
                runner.result()
                delay = BACKOFF_MIN
            except InvalidStatus as exc:
                need_login = exc.response.status_code == 401
                out(f"# websocket refused (HTTP {exc.response.status_code}); retrying in {delay:.0f} s")
            except (ConnectionClosed, OSError, aiohttp.ClientError, TimeoutError) as exc:
                out(f"# connection lost ({type(exc).__name__}); reconnecting in {delay:.0f} s")
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, BACKOFF_MAX)


async def _default_login(settings: Settings, agent: str) -> str | None:
    """The login of the employee who owns *agent*, read from the database."""
    from sqlalchemy import select

    from callpop.store.db import open_database
    from callpop.store.models import Employee, Extension

    db = await open_database(settings.database)
    try:
        async with db.sessions() as session:
            login: str | None = await session.scalar(
                select(Employee.login).join(Extension, Extension.employee_id == Employee.id)
                .where(Extension.extension == agent))
            return login
    finally:
        await db.close()


def main(args: argparse.Namespace, settings: Settings) -> int:
    url = (args.url or f"http://{settings.web.host}:{settings.web.port}").rstrip("/")
    if not url.startswith(("http://", "https://")):
        print(f"callpop watch: --url: expected http://host:port, found {url!r}", file=sys.stderr)
        return 2
    login_name = args.login
    if not login_name:
        try:
            login_name = asyncio.run(_default_login(settings, args.agent))
        except Exception as exc:
            print(f"callpop watch: cannot read the database to find agent {args.agent}'s login ({exc}); "
                  f"pass --login", file=sys.stderr)
            return 2
        if not login_name:
            print(f"callpop watch: no employee has extension {args.agent}; pass --login", file=sys.stderr)
            return 2
    password = args.password or os.environ.get("CALLPOP_PASSWORD") or getpass.getpass(f"Password for {login_name}: ")
    target = WatchTarget(url=url, login=login_name, password=password, agent=str(args.agent))
    try:
        asyncio.run(watch(target, lambda line: print(line, flush=True)))
    except LoginFailed as exc:
        print(f"callpop watch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
