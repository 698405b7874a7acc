"""One place where errors become answers: domain errors to clear 4xx, bugs to a plain 500.

The store raises errors that name the field (``callpop.store.errors``); a handler lets
them through and this middleware answers JSON ``{"error": ..., "field": ...}`` under
``/api`` and a short page elsewhere. Anything unexpected is logged with its traceback and
answered with a generic message: the user never sees a stack trace.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["error_middleware", "status_for"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_BY_NAME = {"NotFound": 404, "Forbidden": 403, "Conflict": 409, "ValidationError": 400}


def status_for(exc: Exception) -> int | None:
    """The HTTP status of a domain error, or None when *exc* is not one (a bug)."""
    from callpop.store.errors import StoreError

    if isinstance(exc, StoreError) or (isinstance(exc, ValueError) and type(exc) is not ValueError):
        for cls in type(exc).__mro__:
            if cls.__name__ in _STATUS_BY_NAME:
                return _STATUS_BY_NAME[cls.__name__]
        status = getattr(exc, "status", None)
        return status if isinstance(status, int) and 400 <= status < 500 else 400
    return None


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/ws")) or "application/json" in request.headers.get("Accept", "")


def _answer(request: web.Request, status: int, message: str, field: str | None) -> web.Response:
    if _wants_json(request):
        body = {"error": message} | ({"field": field} if field else {})
        return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json")
    page = (f"<!doctype html><meta charset=utf-8><title>callpop: {status}</title>"
            f"<h1>{status}</h1><p>{html.escape(message)}</p><p><a href=\"/\">Back to the desk</a></p>")
    return web.Response(status=status, text=page, content_type="text/html")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        status = status_for(exc)
        if status is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return _answer(request, 500, "Something went wrong on the server; it has been logged.", None)
        message = getattr(exc, "message", None) or str(exc)
        log.info("%s %s -> %d: %s", request.method, request.path, status, message)
        return _answer(request, status, str(message), getattr(exc, "field", None))
