"""Login, logout and the manager's desk page (/health is server/monitoring.py).

A wrong login and a wrong password get the same answer, after the same argon2 work (a
dummy hash is checked when the login does not exist), so the form cannot be used to find
out who works here. ``next`` is followed only when it is a path on this site.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

from callpop.accounts import hash_password
from callpop.logs import Throttle
from callpop.server.auth import current_user, login_user, logout_user, require_user, session_key
from callpop.server.keys import DB, HUB, SETTINGS
from callpop.server.login_gate import LOGIN_GATE, Busy
from callpop.server.templating import render
from callpop.store import employees

__all__ = ["desk", "login_form", "login_submit", "logout", "logout_everywhere", "safe_next"]

log = logging.getLogger(__name__)
_throttled = Throttle(log)  # a password-guessing run: one line a minute, with a count

_DUMMY_HASH = hash_password("callpop-no-such-user")
MAX_FIELD = 200


def safe_next(value: str | None) -> str:
    """Where to go after login: a local path, never another site (``//evil``, ``/\\evil``).

    Control characters (a header cannot carry them) and backslashes send the user home;
    anything else outside printable ASCII is percent-encoded, as a Location header must be."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or any(
            c == "\\" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        return "/"
    return quote(value, safe="/?&=%#:@!$'()*+,;~-._")


async def login_form(request: web.Request) -> web.StreamResponse:
    if current_user(request) is not None:
        return web.Response(status=302, headers={"Location": safe_next(request.query.get("next"))})
    return render(request, "login.html", error=None, login="", next=safe_next(request.query.get("next")))


def _shown(login: str, known: bool) -> str:
    """A login for the log: an unknown one may be a password typed into the wrong field."""
    return login if known else f"<unknown sha256:{hashlib.sha256(login.encode()).hexdigest()[:12]}>"


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    login = str(form.get("login", "")).strip()[:MAX_FIELD]
    password = str(form.get("password", ""))[:1024]
    next_path = safe_next(str(form.get("next", "")) or None)
    address = request.remote or "?"
    gate = request.app[LOGIN_GATE]
    wait = gate.retry_after(address, login)
    if wait:
        _throttled.log(logging.WARNING, "throttled", "login throttled login=%s remote=%s retry_after=%ds",
                       _shown(login, False), address, wait)
        return _refused(request, 429, wait, login, next_path, "Too many failed logins: wait a few minutes and "
                                                             "try again.")
    employee_id: int | None = None
    generation = 0
    row = None
    mark = gate.attempt(address, login)
    if login and password:
        async with request.app[DB].sessions() as session:
            row = await employees.credentials(session, login)
        try:
            # the same argon2 work whether the login exists or not: timing tells nothing
            ok = await gate.verify(_DUMMY_HASH if row is None else row[1], password)
        except Busy:
            _throttled.log(logging.WARNING, "busy", "login refused: password checks saturated remote=%s", address)
            return _refused(request, 503, 1, login, next_path, "The server is busy checking passwords: try "
                                                               "again in a moment.")
        if ok and row is not None and row[2]:
            employee_id, generation = row[0], row[3]
    if employee_id is None:
        log.info("login failed login=%s remote=%s", _shown(login, row is not None), address)
        return render(request, "login.html", status=401, login=login, next=next_path,
                      error="Wrong login or password.")
    gate.succeeded(address, login, mark)
    response = web.Response(status=302, headers={"Location": next_path})
    login_user(request, response, employee_id, generation)
    log.info("login ok login=%s remote=%s", login, address)
    return response


def _refused(request: web.Request, status: int, retry_after: int, login: str, next_path: str,
             error: str) -> web.Response:
    response = render(request, "login.html", status=status, login=login, next=next_path, error=error)
    response.headers["Retry-After"] = str(retry_after)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End this session: the cookie is removed and refused from now on, even a copy of it,
    and this browser's desk tabs close; the employee's sessions on other devices go on."""
    user = current_user(request)
    tabs_of = session_key(request)
    response = web.Response(status=302, headers={"Location": "/login"})
    await logout_user(request, response)
    if user is not None:
        closed = request.app[HUB].disconnect_user(user.id, session=tabs_of)
        log.info("logout login=%s tabs_closed=%d", user.login, closed)
    return response


async def logout_everywhere(request: web.Request) -> web.StreamResponse:
    """End every session of the logged-in employee, on every device (a lost laptop, a
    shared computer): all their cookies are refused and their open tabs closed."""
    user = require_user(request)
    response = web.Response(status=302, headers={"Location": "/login"})
    await logout_user(request, response, everywhere=True)
    closed = request.app[HUB].disconnect_user(user.id, reason="logged out everywhere")
    log.info("logout everywhere login=%s tabs_closed=%d", user.login, closed)
    return response


async def desk(request: web.Request) -> web.StreamResponse:
    """The page a manager keeps open; the script opens /ws and renders the cards."""
    user = require_user(request)
    settings = request.app[SETTINGS]
    page: dict[str, Any] = {"supervisor": user.is_supervisor}
    if user.is_supervisor:  # a watched call names the manager whose phone it is
        async with request.app[DB].sessions() as session:
            page["agents"] = await employees.names_by_extension(session)
    return render(request, "desk.html", ws_path="/ws", ws_urls=list(settings.push.instance_urls),
                  dismiss_after=settings.push.dismiss_after,
                  extensions=list(user.extensions), is_supervisor=user.is_supervisor, page_data=page)
