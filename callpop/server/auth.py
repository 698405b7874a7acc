"""Who is asking: signed session cookies, roles and CSRF tokens (passwords: ``callpop.accounts``).

The session cookie holds only the employee id, the employee's session generation, an
expiry and a random nonce, signed with HMAC-SHA256; the employee row is read on each
request (and socket handshake), so a deactivated account or a changed role takes effect
at once, and a cookie is refused when its generation is no longer the employee's (every
session ended: log out everywhere, a new password or role, a dismissal) or its nonce was
revoked (that one session ended by "Log out"). Every unsafe request (POST, PUT, PATCH, DELETE) must
carry the CSRF token bound to the session nonce — forms in a hidden ``csrf_token`` field,
scripts in the ``X-CSRF-Token`` header — so a page on another site cannot act for the
manager even if the browser sends the cookie.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from callpop.accounts import CurrentUser
from callpop.server.errors import Refusal
from callpop.server.keys import DB, SECRET, SETTINGS
from callpop.store.employees import current_account, end_all_sessions, revoke_session, session_revoked

__all__ = [
    "COOKIE",
    "MACHINE_PATHS",
    "auth_middleware",
    "csrf_token",
    "login_user",
    "logout_user",
    "new_session_cookie",
    "require_role",
    "require_user",
    "session_key",
]

COOKIE = "callpop_session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Answered to machines (the PBX's dialplan, load balancers, Prometheus), each behind its
# own allow-list or token and never with a person's session: no cookie is read, minted or
# set for them, so a question costs no HMAC, no random nonce and no database read.
MACHINE_PATHS = ("/pbx/", "/health", "/metrics")
# Login must work before there is a session; it is protected by the anonymous session's token.


@dataclass(frozen=True, slots=True)
class _Session:
    uid: int | None
    nonce: str
    expires: float
    gen: int = 0


# typed request storage (aiohttp warns on plain string keys, and tests turn warnings into errors)
_USER_KEY: web.RequestKey[CurrentUser | None] = web.RequestKey("callpop.user")
_SESSION_KEY: web.RequestKey[_Session] = web.RequestKey("callpop.session", _Session)


def _sign(secret: bytes, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret, payload, hashlib.sha256).digest()).decode().rstrip("=")


def _encode(secret: bytes, session: _Session) -> str:
    payload = json.dumps({"u": session.uid, "n": session.nonce, "e": int(session.expires), "g": session.gen}).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_sign(secret, payload)}"


def _decode(secret: bytes, value: str) -> _Session | None:
    body, _, sig = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        return None
    if not sig or not hmac.compare_digest(sig, _sign(secret, payload)):
        return None
    try:
        data = json.loads(payload)
        session = _Session(uid=data["u"], nonce=str(data["n"]), expires=float(data["e"]), gen=int(data.get("g", 0)))
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires < time.time():
        return None
    return session


def session_key(request: web.Request) -> str:
    """This login session's name for the push hub (its tabs close at "Log out"): derived
    from the nonce, never the nonce itself, so it can be logged and kept in memory."""
    session: _Session = request[_SESSION_KEY]
    return hashlib.sha256(f"tab:{session.nonce}".encode()).hexdigest()[:16]


def csrf_token(request: web.Request) -> str:
    """The token a form or script must send back with any unsafe request."""
    session: _Session = request[_SESSION_KEY]
    return _sign(request.app[SECRET], f"csrf:{session.nonce}".encode())


def _set_cookie(request: web.Request, response: web.StreamResponse, session: _Session) -> None:
    settings = request.app[SETTINGS].web
    response.set_cookie(COOKIE, _encode(request.app[SECRET], session), httponly=True, samesite="Lax",
                        secure=settings.cookie_secure, path="/", max_age=settings.session_hours * 3600,
                        domain=settings.cookie_domain or None)


async def _load_user(request: web.Request, session: _Session) -> CurrentUser | None:
    """The session's employee, or None: no such active account, or this session was ended."""
    assert session.uid is not None
    async with request.app[DB].sessions() as db:
        user = await current_account(db, session.uid, request.app[SETTINGS].web.default_language)
        if user is None or user.session_generation != session.gen or await session_revoked(db, session.nonce):
            return None
        return user


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the session and user; refuse unsafe requests without the session's CSRF token."""
    if request.method == "GET" and request.path.startswith(MACHINE_PATHS):
        return await handler(request)
    secret = request.app[SECRET]
    raw = request.cookies.get(COOKIE)
    session = _decode(secret, raw) if raw else None
    fresh = session is None
    if session is None:
        session = _Session(uid=None, nonce=secrets.token_urlsafe(16),
                           expires=time.time() + request.app[SETTINGS].web.session_hours * 3600)
    request[_SESSION_KEY] = session
    request[_USER_KEY] = await _load_user(request, session) if session.uid is not None else None
    if request.method not in _SAFE_METHODS and not request.path.startswith("/static/"):
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            sent = str((await request.post()).get("csrf_token", ""))
        if not sent or not hmac.compare_digest(sent, csrf_token(request)):
            raise Refusal(403, "CSRF token missing or wrong: reload the page and try again.")
    response = await handler(request)
    if fresh and not response.prepared:
        _set_cookie(request, response, request[_SESSION_KEY])
    return response


def current_user(request: web.Request) -> CurrentUser | None:
    user: CurrentUser | None = request.get(_USER_KEY)
    return user


def require_user(request: web.Request) -> CurrentUser:
    """The logged-in user; pages redirect to the login form, the API and /ws answer 401."""
    user = current_user(request)
    if user is None:
        if request.path.startswith(("/api/", "/ws")) or request.headers.get("Accept") == "application/json":
            raise Refusal(401, "login required")
        raise web.HTTPFound(f"/login?next={request.rel_url.path_qs}" if request.path != "/" else "/login")
    return user


def require_role(request: web.Request, *roles: str) -> CurrentUser:
    user = require_user(request)
    if user.role not in roles:
        if set(roles) == {"supervisor", "admin"}:
            raise Refusal(403, "needs role supervisor or admin")
        raise Refusal(403, "needs role %(roles)s", roles=" or ".join(roles))
    return user


def new_session_cookie(secret: bytes, employee_id: int, generation: int, hours: float) -> str:
    """The cookie value of a new session of *employee_id* (what a successful login sets;
    the browser tests start their sessions with it instead of typing a password each time)."""
    session = _Session(uid=employee_id, nonce=secrets.token_urlsafe(16), expires=time.time() + hours * 3600,
                       gen=generation)
    return _encode(secret, session)


def login_user(request: web.Request, response: web.StreamResponse, employee_id: int, generation: int = 0) -> None:
    """Start a new session (new nonce: a token seen before login is useless after it)."""
    session = _Session(uid=employee_id, nonce=secrets.token_urlsafe(16),
                       expires=time.time() + request.app[SETTINGS].web.session_hours * 3600, gen=generation)
    request[_SESSION_KEY] = session
    _set_cookie(request, response, session)


async def logout_user(request: web.Request, response: web.StreamResponse, *, everywhere: bool = False) -> None:
    """End this session (its cookie, even a copy, is refused from now on), or with
    *everywhere* every session of the employee on every device."""
    session: _Session = request[_SESSION_KEY]
    if session.uid is not None:
        async with request.app[DB].sessions() as db:
            if everywhere:
                await end_all_sessions(db, session.uid)
            else:
                await revoke_session(db, session.nonce, session.uid, dt.datetime.fromtimestamp(session.expires, dt.UTC))
            await db.commit()
    response.del_cookie(COOKIE, path="/", domain=request.app[SETTINGS].web.cookie_domain or None)
