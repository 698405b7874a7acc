"""Login, logout and the manager's desk page (/health is server/monitoring.py).

A wrong login and a wrong password get the same answer, after the same argon2 work (a
dummy hash is checked when the login does not exist), so the form cannot be used to find
out who works here. ``next`` is followed only when it is a path on this site.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from callpop.accounts import check_password, hash_password
from callpop.server.auth import current_user, login_user, logout_user, require_user
from callpop.server.keys import DB, HUB, SETTINGS
from callpop.server.templating import render
from callpop.store import employees

__all__ = ["desk", "login_form", "login_submit", "logout", "safe_next"]

log = logging.getLogger(__name__)

_DUMMY_HASH = hash_password("callpop-no-such-user")
MAX_FIELD = 200


def safe_next(value: str | None) -> str:
    """Where to go after login: a local path, never another site (``//evil``, ``/\\evil``)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or any(
            c in value for c in "\r\n\t\\"):
        return "/"
    return value


async def login_form(request: web.Request) -> web.StreamResponse:
    if current_user(request) is not None:
        return web.Response(status=302, headers={"Location": safe_next(request.query.get("next"))})
    return render(request, "login.html", error=None, login="", next=safe_next(request.query.get("next")))


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    login = str(form.get("login", "")).strip()[:MAX_FIELD]
    password = str(form.get("password", ""))[:1024]
    next_path = safe_next(str(form.get("next", "")) or None)
    employee_id: int | None = None
    if login and password:
        async with request.app[DB].sessions() as session:
            row = await employees.credentials(session, login)
        if row is None:
            check_password(_DUMMY_HASH, password)
        elif check_password(row[1], password) and row[2]:
            employee_id = row[0]
    if employee_id is None:
        log.info("login failed login=%r remote=%s", login, request.remote)
        return render(request, "login.html", status=401, login=login, next=next_path,
                      error="Wrong login or password.")
    response = web.Response(status=302, headers={"Location": next_path})
    login_user(request, response, employee_id)
    log.info("login ok login=%s remote=%s", login, request.remote)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    response = web.Response(status=302, headers={"Location": "/login"})
    logout_user(request, response)
    if user is not None:
        closed = request.app[HUB].disconnect_user(user.id)
        log.info("logout login=%s tabs_closed=%d", user.login, closed)
    return response


async def desk(request: web.Request) -> web.StreamResponse:
    """The page a manager keeps open; the script opens /ws and renders the cards."""
    user = require_user(request)
    settings = request.app[SETTINGS]
    page: dict[str, Any] = {"supervisor": user.is_supervisor}
    if user.is_supervisor:  # a watched call names the manager whose phone it is
        async with request.app[DB].sessions() as session:
            page["agents"] = await employees.names_by_extension(session)
    return render(request, "desk.html", ws_path="/ws", dismiss_after=settings.push.dismiss_after,
                  extensions=list(user.extensions), is_supervisor=user.is_supervisor, page_data=page)
