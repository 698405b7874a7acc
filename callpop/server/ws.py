"""``GET /ws``: the socket a desk tab keeps open to receive pops (docs/websocket.md).

Login is checked before the upgrade (401), and so is the Origin: a page on another site
could otherwise open the socket with the manager's cookie and read every caller's card
(cross-site websocket hijacking). Messages from the browser are small control requests;
anything malformed is answered with an ``error`` message, never an exception.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web
from yarl import URL

from callpop.push import Connection, Hub
from callpop.server.auth import require_user, session_key
from callpop.server.errors import Refusal
from callpop.server.keys import HUB, SETTINGS
from callpop.store import employees

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["ACTIONS", "HEARTBEAT", "MAX_MESSAGE", "Action", "origin_allowed", "recheck_accounts", "websocket"]

log = logging.getLogger(__name__)

HEARTBEAT = 20.0
MAX_MESSAGE = 4096


def origin_allowed(request: web.Request) -> bool:
    """True when the Origin header is absent (non-browser clients), names this host, or
    names one of ``[push] instance_urls`` (a desk whose own instance went away)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        sent = URL(origin)
        here = URL(f"//{request.host}")
    except ValueError:
        return False
    if sent.scheme not in ("http", "https") or not sent.host or not here.host:
        return False
    if (sent.host.lower(), _port(sent.explicit_port)) == (here.host.lower(), _port(here.explicit_port)):
        return True
    return (sent.scheme, sent.host.lower(), _port(sent.explicit_port)) in _instances(
        request.app[SETTINGS].push.instance_urls)


@functools.cache
def _instances(urls: tuple[str, ...]) -> frozenset[tuple[str, str, int | None]]:
    return frozenset((u.scheme, u.host.lower(), _port(u.explicit_port)) for u in map(URL, urls) if u.host)


def _port(port: int | None) -> int | None:
    """Default ports are the same as no port: Origin omits them, Host may not."""
    return None if port in (80, 443) else port


def _error(detail: str, code: str = "bad_message") -> dict[str, Any]:
    return {"type": "error", "error": code, "detail": detail}


def _handle_text(hub: Hub, conn: Connection, data: str) -> None:
    if len(data) > MAX_MESSAGE:
        hub.reply(conn, _error(f"message longer than {MAX_MESSAGE} bytes"))
        return
    try:
        message = json.loads(data)
    except ValueError:
        hub.reply(conn, _error("not JSON: expected an object like {\"type\": \"ping\"}"))
        return
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        hub.reply(conn, _error('expected a JSON object with a string "type"'))
        return
    kind = message["type"]
    action = ACTIONS.get(kind)
    if action is None:
        hub.reply(conn, _error(f"unknown type {kind[:40]!r}: expected {', '.join(ACTIONS)}"))
    elif action.supervisors_only and not conn.user.is_supervisor:
        hub.reply(conn, _error(f"only supervisors and admins may {action.what}", "forbidden"))
    else:
        action.run(hub, conn)


@dataclass(frozen=True, slots=True)
class Action:
    """One message a tab may send (docs/websocket.md); the authorization matrix test sends
    every one of them as every kind of user."""

    what: str
    run: Callable[[Hub, Connection], None]
    supervisors_only: bool = False


ACTIONS: dict[str, Action] = {
    "ping": Action("ask for a pong", lambda hub, conn: hub.reply(conn, {"type": "pong", "server_time": time.time()})),
    "subscribe_all": Action("watch all calls", lambda hub, conn: hub.set_scope(conn, "all"), supervisors_only=True),
    "subscribe_own": Action("watch their own calls", lambda hub, conn: hub.set_scope(conn, "own")),
}


async def recheck_accounts(hub: Hub, db: Database, every: float) -> None:
    """Close the tabs of accounts deactivated after they connected, and of sessions ended
    since (a new password, role or "log out everywhere": the session generation moved).
    ``callpop user`` runs in another process, so the daemon finds out by asking; a page or
    a new socket is refused at once anyway, this covers the socket already open."""
    while True:
        await asyncio.sleep(every)
        connected = hub.employee_ids()
        if not connected:
            continue
        try:
            async with db.sessions() as session:
                generations = await employees.session_generations(session, connected)
        except Exception as exc:
            log.warning("account re-check failed (%s); trying again in %.0f s", type(exc).__name__, every)
            continue
        for employee_id in sorted(connected - set(generations)):
            closed = hub.disconnect_user(employee_id, reason="account deactivated", fan_out=False)
            log.warning("account id=%s is deactivated or gone: closed its %d open tab(s)", employee_id, closed)
        for employee_id, generation in sorted(generations.items()):
            closed = hub.disconnect_user(employee_id, reason="session ended", older_than=generation,
                                        fan_out=False)
            if closed:
                log.warning("account id=%s: its sessions were ended; closed %d open tab(s)", employee_id, closed)


async def websocket(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    if not origin_allowed(request):
        log.warning("cross-site websocket refused login=%s origin=%r host=%r",
                    user.login, request.headers.get("Origin"), request.host)
        raise Refusal(403, "cross-site websocket refused")
    hub = request.app[HUB]
    cap = request.app[SETTINGS].push.max_tabs_per_employee
    if cap and hub.tabs_of(user.id) >= cap:
        log.warning("websocket refused login=%s: %d tabs open already ([push] max_tabs_per_employee)",
                    user.login, hub.tabs_of(user.id))
        raise Refusal(429, "at most %(cap)s open tabs per employee: close one and reload", cap=cap,
                      headers={"Retry-After": "30"})
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=64 * 1024)
    await ws.prepare(request)
    conn = hub.attach(ws, user, transport=request.transport, session=session_key(request))
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                _handle_text(hub, conn, msg.data)
            elif msg.type is WSMsgType.BINARY:
                hub.reply(conn, _error("binary frames are not understood: send JSON text"))
            elif msg.type is WSMsgType.ERROR:
                log.debug("websocket error login=%s: %s", user.login, ws.exception())
    finally:
        hub.detach(conn)
        log.info("websocket closed login=%s code=%s sent=%d", user.login, ws.close_code, conn.sent)
    return ws
