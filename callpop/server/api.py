"""The JSON REST API under ``/api/``: clients, phones, agreements, promises, notes,
payments and receivables, plus the manager's own shortcuts (``me``, due promises, a
client's card, click-to-call).

Every operation is declared once in ``routes.ROUTES`` with the schemas it validates with;
the router and ``openapi.py`` are both built from that list. Domain errors become HTTP
answers through ``errors.STATUS``: 422 names the field, 404 the record, 403 a
colleague's record, 409 a duplicate. Login is required (401 otherwise); every
write needs the session's CSRF token in ``X-CSRF-Token`` (the auth middleware checks it).
"""

from __future__ import annotations

import logging

from aiohttp import web

from callpop.server.api_base import (
    Handler,
    actor_of,
    json_response,
    path_id,
    read_json,
    session_for,
    translate_errors,
)
from callpop.server.auth import require_role, require_user
from callpop.server.keys import SETTINGS
from callpop.store import audit
from callpop.store.records import clients, idempotency, sales
from callpop.store.records.schemas import RESOURCES

__all__ = [
    "add_phone", "create_client", "create_of", "delete_phone", "get_client", "get_of", "get_phone", "list_clients",
    "list_of", "list_phones", "update_client", "update_of", "update_phone",
]

log = logging.getLogger(__name__)


# --- generic handlers for the record kinds -------------------------------------------------

def _named(name: str, fn: Handler) -> Handler:
    fn.__name__ = fn.__qualname__ = name
    return translate_errors(fn)


def list_of(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        require_user(request)
        async with session_for(request) as s:
            page = await sales.list_records(s, kind, request.query, request.app[SETTINGS])
        return json_response(page.to_json())
    return _named(f"list_{RESOURCES[kind].plural}", handler)


def create_of(kind: str) -> Handler:
    """POST of a new record; with an ``Idempotency-Key`` header (promises, agreements,
    notes) a request sent again answers 200 with the record the first one made."""
    async def handler(request: web.Request) -> web.StreamResponse:
        actor = actor_of(request)
        body = await read_json(request)
        raw_key = request.headers.get(idempotency.KEY_HEADER) if kind in idempotency.IDEMPOTENT_KINDS else None
        async with session_for(request) as s:
            if raw_key is None:
                item, made = await sales.create_record(s, kind, body, actor, request.app[SETTINGS]), True
            else:
                item, made = await idempotency.create_once(s, kind, body, actor, request.app[SETTINGS],
                                                           idempotency.valid_key(raw_key))
        if not made:
            log.info("%s %s sent again by employee %s: the saved one answered", kind, item["id"], actor.id)
        return json_response(item, 201 if made else 200)
    return _named(f"create_{kind}", handler)


def get_of(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        require_user(request)
        async with session_for(request) as s:
            item = await sales.get_record(s, kind, path_id(request))
        return json_response(item)
    return _named(f"get_{kind}", handler)


def update_of(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        actor = actor_of(request)
        body = await read_json(request)
        async with session_for(request) as s:
            item = await sales.update_record(s, kind, path_id(request), body, actor, request.app[SETTINGS])
        return json_response(item)
    return _named(f"update_{kind}", handler)


# --- clients and phones ----------------------------------------------------------------------

@translate_errors
async def list_clients(request: web.Request) -> web.StreamResponse:
    require_user(request)
    async with session_for(request) as s:
        page = await clients.list_clients(s, request.query, request.app[SETTINGS])
    return json_response(page.to_json())


@translate_errors
async def create_client(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    body = await read_json(request)
    async with session_for(request) as s:
        client = await clients.create_client(s, body, actor, request.app[SETTINGS])
    return json_response(client, 201)


@translate_errors
async def get_client(request: web.Request) -> web.StreamResponse:
    require_user(request)
    async with session_for(request) as s:
        client = await clients.get_client(s, path_id(request), request.app[SETTINGS])
    return json_response(client)


@translate_errors
async def update_client(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    body = await read_json(request)
    async with session_for(request) as s:
        client = await clients.update_client(s, path_id(request), body, actor, request.app[SETTINGS])
    return json_response(client)


@translate_errors
async def add_phone(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    body = await read_json(request)
    async with session_for(request) as s:
        phone = await clients.add_phone(s, path_id(request), body, actor, request.app[SETTINGS])
    return json_response(phone, 201)


@translate_errors
async def list_phones(request: web.Request) -> web.StreamResponse:
    require_user(request)
    async with session_for(request) as s:
        page = await clients.list_phones(s, request.query, request.app[SETTINGS])
    return json_response(page.to_json())


@translate_errors
async def get_phone(request: web.Request) -> web.StreamResponse:
    require_user(request)
    async with session_for(request) as s:
        phone = await clients.get_phone(s, path_id(request), request.app[SETTINGS])
    return json_response(phone)


@translate_errors
async def update_phone(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    body = await read_json(request)
    async with session_for(request) as s:
        phone = await clients.update_phone(s, path_id(request), body, actor, request.app[SETTINGS])
    return json_response(phone)


@translate_errors
async def delete_phone(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    async with session_for(request) as s:
        await clients.delete_phone(s, path_id(request), actor)
    return web.Response(status=204)


@translate_errors
async def audit_trail(request: web.Request) -> web.StreamResponse:
    """Changes to money and KPI inputs, newest first (supervisors and admins)."""
    require_role(request, "supervisor", "admin")
    async with session_for(request) as s:
        page = await audit.list_changes(s, request.query)
    return json_response(page)
