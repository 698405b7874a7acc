"""One place where errors become answers: domain errors to clear 4xx, bugs to a plain 500.

The store raises errors that name the field (``callpop.store.errors``); a handler lets
them through and this middleware answers JSON ``{"error": ..., "field": ...}`` under
``/api`` and a short page elsewhere. Anything unexpected is logged with its traceback and
answered with a generic message: the user never sees a stack trace.

Pages raise their 4xx as JSON bodies too (``bad_request``, ``require_role``); a browser
asking for a page (``Accept: text/html``, not ``/api`` or ``/ws``) gets them as the
translated ``error.html`` instead: the message and a link back, never raw JSON.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from callpop.server.errors import status_for

__all__ = ["error_middleware"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/ws")) or "application/json" in request.headers.get("Accept", "")


def _wants_page(request: web.Request) -> bool:
    """A browser navigating to a page (not a script calling the API)."""
    return not request.path.startswith(("/api/", "/ws")) and "text/html" in request.headers.get("Accept", "")


def error_page(request: web.Request, status: int, message: str, field: str | None) -> web.Response:
    """The translated error page; a plain one when the templates cannot render it."""
    from callpop.server.templating import _translator, language, render

    back = request.path if status == 400 and request.method == "GET" else "/"
    try:
        return render(request, "error.html", status=status, code=status, message=message, field=field, back=back)
    except Exception:
        log.exception("error page for %s could not be rendered", request.path)
    t = _translator(language(request))
    page = (f"<!doctype html><meta charset=utf-8><title>callpop: {status}</title>"
            f"<h1>{status}</h1><p>{html.escape(t(message))}</p>"
            f"<p><a href=\"{html.escape(back)}\">{html.escape(t('Back'))}</a></p>")
    return web.Response(status=status, text=page, content_type="text/html")


def _answer(request: web.Request, status: int, message: str, field: str | None) -> web.Response:
    if _wants_json(request):
        body = {"error": message} | ({"field": field} if field else {})
        return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json")
    return error_page(request, status, message, field)


def _http_error_text(exc: web.HTTPException) -> tuple[str, str | None]:
    """(message, field) of an HTTP error raised with a JSON or a plain-text body."""
    text = exc.text or exc.reason
    if exc.content_type == "application/json":
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            field = body.get("field")
            return body["error"], field if isinstance(field, str) else None
    prefix = f"{exc.status}: "
    return (text[len(prefix):] if text.startswith(prefix) else text), None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_page(request) or exc.content_type == "text/html":
            raise
        message, field = _http_error_text(exc)
        return error_page(request, exc.status, message, field)
    except Exception as exc:
        status = status_for(exc, published=False)
        if status is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return _answer(request, 500, "Something went wrong on the server; it has been logged.", None)
        message = getattr(exc, "message", None) or str(exc)
        log.info("%s %s -> %d: %s", request.method, request.path, status, message)
        return _answer(request, status, str(message), getattr(exc, "field", None))
