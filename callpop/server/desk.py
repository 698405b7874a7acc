"""Pages of the manager's desk besides the live board: a client's page (card, history,
record form, click-to-call), the promises due page, and the language switch.

The pages are thin: they check the login, embed the data the script starts from, and the
script uses the JSON API for everything else (so the rules live in one place).
"""

from __future__ import annotations

import logging

from aiohttp import web

from callpop.server.auth import current_user, require_user
from callpop.server.errors import Refusal
from callpop.server.i18n import LANGUAGES
from callpop.server.keys import DB, SETTINGS
from callpop.server.pages import safe_next
from callpop.server.templating import LANG_COOKIE, render
from callpop.store import directory, employees

__all__ = ["client_page", "promises_page", "set_language"]

log = logging.getLogger(__name__)
_MAX_ID = 2**31 - 1


async def client_page(request: web.Request) -> web.StreamResponse:
    """One client with the whole history; 404 page for an unknown id."""
    require_user(request)
    ident = int(request.match_info["id"])
    card = None
    if 1 <= ident <= _MAX_ID:
        async with request.app[DB].sessions() as session:
            card = await directory.client_card(session, ident, request.app[SETTINGS])
    if card is None:
        return render(request, "not_found.html", status=404)
    data = card.to_json()
    return render(request, "client.html", client_name=data["name"],
                  page_data={"client_id": ident, "card": data})


async def promises_page(request: web.Request) -> web.StreamResponse:
    require_user(request)
    return render(request, "promises.html")


async def set_language(request: web.Request) -> web.StreamResponse:
    """The RU/EN switch: stored on the employee (follows them to any browser) and in a
    cookie (the login page, before anyone is known)."""
    form = await request.post()
    lang = str(form.get("language", ""))
    if lang not in LANGUAGES:
        raise Refusal(422, "language: expected one of %(choices)s, got %(got)s", field="language",
                      choices=", ".join(LANGUAGES), got=repr(lang[:20]))
    user = current_user(request)
    if user is not None:
        async with request.app[DB].sessions() as session:
            await employees.set_language(session, user.id, lang)
            await session.commit()
        log.info("employee %s switched the UI to %s", user.id, lang)
    response = web.Response(status=303, headers={"Location": safe_next(str(form.get("next", "")) or None)})
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=request.app[SETTINGS].web.cookie_secure, path="/")
    return response
