"""The JSON REST API under ``/api/``: clients, phones, agreements, promises, notes,
payments and receivables, plus the manager's own shortcuts (``me``, due promises, a
client's card, click-to-call).

Every operation is declared once in ``ENDPOINTS`` with the schemas it validates with;
``routes.py`` registers them and ``openapi.py`` publishes them from the same list. Domain
errors become HTTP answers here and only here: 422 names the field, 404 the record,
403 a colleague's record, 409 a duplicate. Login is required (401 otherwise); every
write needs the session's CSRF token in ``X-CSRF-Token`` (the auth middleware checks it).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from aiohttp import web

from callpop.server import api_callbacks, api_calls
from callpop.server.api_base import (
    Handler,
    actor_of,
    json_response,
    path_id,
    read_json,
    session_for,
    translate_errors,
)
from callpop.server.auth import require_user
from callpop.server.keys import SETTINGS
from callpop.server.openapi import Endpoint, build_document
from callpop.store import client_records, records
from callpop.store.schemas import RESOURCES

__all__ = ["ENDPOINTS", "openapi_json"]

log = logging.getLogger(__name__)


# --- generic handlers for the record kinds -------------------------------------------------

def _named(name: str, fn: Handler) -> Handler:
    fn.__name__ = fn.__qualname__ = name
    return translate_errors(fn)


def _list(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        require_user(request)
        async with session_for(request) as s:
            page = await records.list_records(s, kind, request.query, request.app[SETTINGS])
        return json_response(page.to_json())
    return _named(f"list_{RESOURCES[kind].plural}", handler)


def _create(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        actor = actor_of(request)
        body = await read_json(request)
        async with session_for(request) as s:
            item = await records.create_record(s, kind, body, actor, request.app[SETTINGS])
        return json_response(item, 201)
    return _named(f"create_{kind}", handler)


def _get(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        require_user(request)
        async with session_for(request) as s:
            item = await records.get_record(s, kind, path_id(request))
        return json_response(item)
    return _named(f"get_{kind}", handler)


def _update(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        actor = actor_of(request)
        body = await read_json(request)
        async with session_for(request) as s:
            item = await records.update_record(s, kind, path_id(request), body, actor, request.app[SETTINGS])
        return json_response(item)
    return _named(f"update_{kind}", handler)


# --- clients and phones ----------------------------------------------------------------------

@translate_errors
async def list_clients(request: web.Request) -> web.StreamResponse:
    require_user(request)
    async with session_for(request) as s:
        page = await client_records.list_clients(s, request.query, request.app[SETTINGS])
    return json_response(page.to_json())


@translate_errors
async def create_client(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    body = await read_json(request)
    async with session_for(request) as s:
        client = await client_records.create_client(s, body, actor, request.app[SETTINGS])
    return json_response(client, 201)


@translate_errors
async def get_client(request: web.Request) -> web.StreamResponse:
    require_user(request)
    async with session_for(request) as s:
        client = await client_records.get_client(s, path_id(request), request.app[SETTINGS])
    return json_response(client)


@translate_errors
async def update_client(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    body = await read_json(request)
    async with session_for(request) as s:
        client = await client_records.update_client(s, path_id(request), body, actor, request.app[SETTINGS])
    return json_response(client)


@translate_errors
async def add_phone(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    body = await read_json(request)
    async with session_for(request) as s:
        phone = await client_records.add_phone(s, path_id(request), body, actor, request.app[SETTINGS])
    return json_response(phone, 201)


@translate_errors
async def list_phones(request: web.Request) -> web.StreamResponse:
    require_user(request)
    async with session_for(request) as s:
        page = await client_records.list_phones(s, request.query, request.app[SETTINGS])
    return json_response(page.to_json())


@translate_errors
async def get_phone(request: web.Request) -> web.StreamResponse:
    require_user(request)
    async with session_for(request) as s:
        phone = await client_records.get_phone(s, path_id(request), request.app[SETTINGS])
    return json_response(phone)


@translate_errors
async def update_phone(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    body = await read_json(request)
    async with session_for(request) as s:
        phone = await client_records.update_phone(s, path_id(request), body, actor, request.app[SETTINGS])
    return json_response(phone)


@translate_errors
async def delete_phone(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    async with session_for(request) as s:
        await client_records.delete_phone(s, path_id(request), actor)
    return web.Response(status=204)


async def openapi_json(request: web.Request) -> web.StreamResponse:
    """The OpenAPI document (public: it describes, it does not reveal data)."""
    return json_response(_document())


@functools.cache
def _document() -> dict[str, Any]:
    return build_document((*ENDPOINTS, *_kpi_endpoints()))


def _kpi_endpoints() -> tuple[Endpoint, ...]:
    """The KPI module's JSON routes (registered by kpi_routes.py, described here so the
    document covers every /api route)."""
    from callpop.server import kpi_api  # here, not at the top: kpi_api's pages import the API's helpers
    obj: dict[str, Any] = {"type": "object"}
    return (
        Endpoint("GET", "/api/kpi/me", kpi_api.api_kpi_me, "My KPIs and bonus this month", "kpi", response_doc=obj),
        Endpoint("GET", r"/api/kpi/employee/{id:\d{1,10}}", kpi_api.api_kpi_employee,
                 "One employee's KPIs (supervisors)", "kpi", response_doc=obj),
        Endpoint("GET", "/api/kpi/dashboard", kpi_api.api_dashboard, "The team's KPIs (supervisors)", "kpi",
                 response_doc=obj),
        Endpoint("GET", "/api/plans", kpi_api.api_plans_get, "Plans of a month (supervisors)", "kpi",
                 response_doc=obj),
        Endpoint("PUT", "/api/plans", kpi_api.api_plans_put, "Set the plans of a month (supervisors)", "kpi",
                 response_doc=obj),
    )


def _crud(kind: str, tag: str) -> list[Endpoint]:
    res = RESOURCES[kind]
    base = f"/api/{res.plural}"
    return [
        Endpoint("GET", base, _list(kind), f"List {res.plural} (filtered, paged)", tag, query=res.filters,
                 response=res.out, paged=True),
        Endpoint("POST", base, _create(kind), f"Create a {kind} (you are its author)", tag, body=res.create,
                 response=res.out, status=201),
        Endpoint("GET", base + r"/{id:\d+}", _get(kind), f"Read one {kind}", tag, response=res.out),
        Endpoint("PATCH", base + r"/{id:\d+}", _update(kind), f"Change a {kind} (only the fields sent)", tag,
                 body=res.patch, response=res.out),
    ]


_C = RESOURCES["client"]
_P = RESOURCES["phone"]
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/openapi.json", openapi_json, "This document", "meta",
             response_doc={"type": "object"}),
    *api_calls.ENDPOINTS,
    *api_callbacks.ENDPOINTS,
    Endpoint("GET", "/api/clients", list_clients, "List or search clients", "clients", query=_C.filters,
             response=_C.out, paged=True),
    Endpoint("POST", "/api/clients", create_client, "Create a client, with its phones", "clients", body=_C.create,
             response=_C.out, status=201),
    Endpoint("GET", r"/api/clients/{id:\d+}", get_client, "Read a client", "clients", response=_C.out),
    Endpoint("PATCH", r"/api/clients/{id:\d+}", update_client, "Change a client", "clients", body=_C.patch,
             response=_C.out),
    Endpoint("POST", r"/api/clients/{id:\d+}/phones", add_phone, "Attach a number to a client", "clients",
             body=_P.create, response=_P.out, status=201),
    Endpoint("GET", "/api/phones", list_phones, "List numbers, by client or by a number as dialled", "clients",
             query=_P.filters, response=_P.out, paged=True),
    Endpoint("GET", r"/api/phones/{id:\d+}", get_phone, "Read one number", "clients", response=_P.out),
    Endpoint("PATCH", r"/api/phones/{id:\d+}", update_phone, "Change a number or its label", "clients",
             body=_P.patch, response=_P.out),
    Endpoint("DELETE", r"/api/phones/{id:\d+}", delete_phone, "Remove a number from its client", "clients",
             status=204),
    *_crud("agreement", "agreements"),
    *_crud("promise", "promises"),
    *_crud("note", "notes"),
    *_crud("payment", "money"),
    *_crud("receivable", "money"),
)
