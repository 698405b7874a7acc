"""One place where errors become answers: domain errors to clear 4xx, bugs to a plain 500.

The store raises errors that name the field (``callpop.store.errors``); a handler lets
them through and this middleware answers JSON ``{"error": ..., "field": ...}`` under
``/api`` and a short page elsewhere. Anything unexpected is logged with its traceback and
answered with a generic message: the user never sees a stack trace.

The web layer's own refusals (``errors.Refusal``: no login, a role, a CSRF token, a bad
query of a page) take the same path: a browser asking for a page (``Accept: text/html``,
not ``/api`` or ``/ws``) gets the translated ``error.html`` (the message and a link back,
never raw JSON), anyone else JSON. Every JSON error carries ``error`` (English, for
programs and logs), ``field`` and ``message`` (the same in the user's language).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from callpop.server.error_text import human_message, refusal_text, text_for_people
from callpop.server.errors import Refusal, status_for
from callpop.store.errors import Conflict, ValidationError

__all__ = ["error_middleware"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/ws")) or "application/json" in request.headers.get("Accept", "")


def _wants_page(request: web.Request) -> bool:
    """A browser navigating to a page (not a script calling the API)."""
    return not request.path.startswith(("/api/", "/ws")) and "text/html" in request.headers.get("Accept", "")


def _lang(request: web.Request) -> str:
    from callpop.server.templating import language

    try:
        return language(request)
    except KeyError:  # no settings (a bare test app): the default catalog
        return "ru"


def error_page(request: web.Request, status: int, said: str, headers: dict[str, str] | None = None) -> web.Response:
    """The error page with *said* (already in the user's language); a plain one when the
    templates cannot render it."""
    from callpop.server.templating import _translator, render

    back = request.path if status == 400 and request.method == "GET" else "/"
    try:
        page = render(request, "error.html", status=status, code=status, message=said, back=back)
        page.headers.update(headers or {})
        return page
    except Exception:
        log.exception("error page for %s could not be rendered", request.path)
    t = _translator(_lang(request))
    text = (f"<!doctype html><meta charset=utf-8><title>callpop: {status}</title>"
            f"<h1>{status}</h1><p>{html.escape(said)}</p>"
            f"<p><a href=\"{html.escape(back)}\">{html.escape(t('Back'))}</a></p>")
    return web.Response(status=status, text=text, content_type="text/html", headers=headers)


def _json_error(status: int, error: str, field: str | None, said: str,
                headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": error, "field": field, "message": said}
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json",
                        headers={"Cache-Control": "no-store", **(headers or {})})


def _answer(request: web.Request, status: int, exc: Exception | None) -> web.Response:
    """A domain error (or, with *exc* None, a bug: 500) as JSON or a page."""
    lang = _lang(request)
    if exc is None:
        message, field = "Something went wrong on the server; it has been logged.", None
        said = text_for_people(message, lang)
    else:
        message, field = str(getattr(exc, "message", None) or exc), getattr(exc, "field", None)
        labelled = isinstance(exc, ValidationError | Conflict)  # something the user typed: name its field
        said = human_message(field, message, lang) if labelled else text_for_people(str(exc), lang)
    if _wants_json(request):
        return _json_error(status, message, field, said)
    return error_page(request, status, said)


def refusal_answer(request: web.Request, exc: Refusal) -> web.Response:
    """A refusal as the asker reads it: a page for a browser's page, JSON for the rest."""
    said = refusal_text(exc, _lang(request))
    if _wants_page(request):
        return error_page(request, exc.status, said, exc.headers)
    return _json_error(exc.status, str(exc), exc.field, said, exc.headers)


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
    except Refusal as exc:
        log.info("%s %s -> %d: %s", request.method, request.path, exc.status, exc)
        return refusal_answer(request, exc)
    except web.HTTPException as exc:  # the router's own 404 and 405
        if exc.status < 400 or not _wants_page(request) or exc.content_type == "text/html":
            raise
        message, _field = _http_error_text(exc)
        kept = {name: exc.headers[name] for name in ("Allow",) if name in exc.headers}  # a 405 names the methods
        return error_page(request, exc.status, text_for_people(message, _lang(request)), kept)
    except Exception as exc:
        status = status_for(exc, published=False)
        if status is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return _answer(request, 500, None)
        log.info("%s %s -> %d: %s", request.method, request.path, status, exc)
        return _answer(request, status, exc)
