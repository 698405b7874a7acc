"""Shared plumbing of the API handlers: JSON in and out, one transaction per request, and
the single place where domain errors become HTTP answers."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.server.auth import require_user
from callpop.server.errors import status_for
from callpop.server.keys import DB
from callpop.store.errors import Conflict, NotFound, StoreError, ValidationError
from callpop.store.records.sales import Actor

__all__ = ["Handler", "actor_of", "error_response", "json_response", "path_id", "read_json", "session_for",
           "translate_errors"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_ID = 2**31 - 1


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


def error_response(status: int, message: str, field: str | None = None) -> web.Response:
    return json_response({"error": message, "field": field}, status)


def _for_people(request: web.Request, status: int, exc: StoreError, problem: str, *, labelled: bool) -> web.Response:
    """The error as programs read it (``error``, ``field``) plus ``message``: the same in the
    user's language, naming the field by its label when the user typed it (*labelled*)."""
    from callpop.server.error_text import human_message, text_for_people
    from callpop.server.templating import language

    lang = language(request)
    said = human_message(exc.field, problem, lang) if labelled else text_for_people(problem, lang)
    return json_response({"error": str(exc), "field": exc.field, "message": said}, status)


def translate_errors(handler: Handler) -> Handler:
    """Domain errors → JSON answers with the status ``errors.STATUS`` gives them."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except StoreError as exc:
            status = status_for(exc)
            assert status is not None  # every StoreError has a status (its base's at least)
            if isinstance(exc, ValidationError | Conflict):  # something the user typed: say it in words
                return _for_people(request, status, exc, exc.message, labelled=True)
            return _for_people(request, status, exc, str(exc), labelled=False)

    return wrapped


async def read_json(request: web.Request) -> object:
    """The request body as JSON; anything else is a 422 on ``body``."""
    if request.content_type != "application/json":
        raise ValidationError("body", f"expected Content-Type application/json, got {request.content_type!r}")
    try:
        return json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("body", "is not valid JSON") from None


@asynccontextmanager
async def session_for(request: web.Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed if the handler finishes, else rolled back."""
    async with request.app[DB].sessions() as session:
        yield session
        await session.commit()


def path_id(request: web.Request, name: str = "id") -> int:
    value = int(request.match_info[name])
    if not 1 <= value <= _MAX_ID:
        raise NotFound(name.removesuffix("_id") or "record", value)
    return value


def actor_of(request: web.Request) -> Actor:
    user = require_user(request)
    return Actor(user.id, user.role)
