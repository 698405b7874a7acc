"""Every URL of callpop in one list: feature modules expose handlers, ``ROUTES`` maps them.

The aiohttp router (``setup_routes``) and the OpenAPI document (``openapi_json``) are both
built from ``ROUTES``; an ``/api`` entry carries the schemas its handler validates with.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from callpop.server import api, api_callbacks, api_calls, desk, monitoring, pages, pbx, ws
from callpop.server.api_base import json_response
from callpop.server.kpi import api as kpi_api
from callpop.server.kpi import pages as kpi_pages
from callpop.server.openapi import build_document
from callpop.server.routing import Access, Route, endpoint, guarded, page
from callpop.server.templating import WEB_ROOT
from callpop.store.records.idempotency import IDEMPOTENT_KINDS
from callpop.store.records.schemas import RESOURCES

__all__ = ["API_ROUTES", "ROUTES", "openapi_json", "setup_routes"]


async def openapi_json(request: web.Request) -> web.StreamResponse:
    """The OpenAPI document (public: it describes, it does not reveal data)."""
    return json_response(_document())


@functools.cache
def _document() -> dict[str, Any]:
    return build_document(API_ROUTES)


def _crud(kind: str, tag: str, *, writes: Access = "employee") -> list[Route]:
    res = RESOURCES[kind]
    base = f"/api/{res.plural}"
    return [
        endpoint("GET", base, api.list_of(kind), f"List {res.plural} (filtered, paged)", tag, query=res.filters,
                 response=res.out, paged=True, access="employee"),
        endpoint("POST", base, api.create_of(kind), f"Create a {kind} (you are its author)", tag, body=res.create,
                 response=res.out, status=201, access=writes, idempotent=kind in IDEMPOTENT_KINDS),
        endpoint("GET", base + r"/{id:\d+}", api.get_of(kind), f"Read one {kind}", tag, response=res.out,
                 access="employee"),
        endpoint("PATCH", base + r"/{id:\d+}", api.update_of(kind), f"Change a {kind} (only the fields sent)", tag,
                 body=res.patch, response=res.out, access=writes),
    ]


_C = RESOURCES["client"]
_P = RESOURCES["phone"]
_OBJ: dict[str, Any] = {"type": "object"}
ROUTES: tuple[Route, ...] = (
    # pages and the live socket (pages.py, ws.py)
    page("GET", "/", pages.desk, "desk", access="employee"),
    page("GET", "/login", pages.login_form, "login", access="anyone"),
    page("POST", "/login", pages.login_submit, access="anyone"),
    page("POST", "/logout", pages.logout, "logout", access="anyone"),
    page("POST", "/logout/everywhere", pages.logout_everywhere, "logout_everywhere", access="employee"),
    page("GET", "/ws", ws.websocket, "ws", access="employee"),
    # for machines: load balancers, Prometheus, the PBX's dialplan (monitoring.py, pbx.py;
    # each checks its own allow-list or token)
    page("GET", "/health", monitoring.health, "health", access="anyone"),
    page("GET", "/metrics", monitoring.metrics, "metrics", access="anyone"),
    page("GET", "/pbx/caller-name", pbx.caller_name, "pbx_caller_name", access="anyone"),
    page("GET", "/pbx/route", pbx.route, "pbx_route", access="anyone"),
    # the desk's other pages (desk.py)
    page("GET", r"/clients/{id:\d{1,10}}", desk.client_page, "client_page", access="employee"),
    page("GET", "/promises", desk.promises_page, "promises_page", access="employee"),
    page("POST", "/settings/language", desk.set_language, "set_language", access="anyone"),
    # KPI pages (kpi/pages.py, kpi/api.py)
    page("GET", "/earnings", kpi_pages.earnings_page, "earnings", access="employee"),
    page("GET", "/dashboard", kpi_pages.dashboard, "dashboard", access="supervisor"),
    page("GET", "/dashboard/drill", kpi_pages.drill_page, "dashboard_drill", access="employee"),
    page("POST", "/dashboard/plans", kpi_pages.plans_submit, "dashboard_plans", access="supervisor"),
    page("GET", "/dashboard.csv", kpi_api.dashboard_csv, "dashboard_csv", access="supervisor"),
    # the JSON API (api.py, api_calls.py, kpi/api.py)
    endpoint("GET", "/api/openapi.json", openapi_json, "This document", "meta", access="anyone",
             response_doc={"type": "object"}),
    endpoint("GET", "/api/me", api_calls.get_me, "Who is logged in (and the CSRF token for writes)", "me",
             response=api_calls.ME_OUT, access="employee"),
    endpoint("PATCH", "/api/me", api_calls.update_me, "Choose your UI language", "me", body=api_calls.ME_PATCH,
             response=api_calls.ME_OUT, access="employee"),
    endpoint("GET", "/api/promises/due", api_calls.due_promises,
             "My open promises due today and overdue, overdue first", "promises",
             response=RESOURCES["promise"].out, paged=True, access="employee"),
    endpoint("GET", r"/api/clients/{id:\d+}/card", api_calls.client_card, "A client's card (as in the pop)",
             "clients", response_doc=api_calls.CARD_DOC, access="employee"),
    endpoint("GET", "/api/lookup", api_calls.lookup, "The pop's cards for a number (who is calling?)", "clients",
             query=api_calls.LOOKUP_QUERY, response_doc=api_calls.LOOKUP_DOC, access="employee"),
    endpoint("GET", r"/api/clients/{id:\d+}/history", api_calls.client_history, "More of one card section",
             "clients", query=api_calls.HISTORY_QUERY, response_doc=api_calls.HISTORY_DOC, access="employee"),
    endpoint("POST", "/api/originate", api_calls.originate, "Click-to-call from your own phone", "calls",
             body=api_calls.ORIGINATE_IN, response=api_calls.ORIGINATE_OUT, status=202, access="employee"),
    endpoint("GET", "/api/callbacks", api_callbacks.list_callbacks, "Missed calls of my clients still to return",
             "calls", response_doc=api_callbacks.LIST_DOC, access="employee"),
    endpoint("POST", r"/api/callbacks/{call_id:\d+}/done", api_callbacks.callback_done,
             "Mark a missed call as dealt with", "calls", status=204, access="employee"),
    endpoint("GET", "/api/clients", api.list_clients, "List or search clients", "clients", query=_C.filters,
             response=_C.out, paged=True, access="employee"),
    endpoint("POST", "/api/clients", api.create_client, "Create a client, with its phones", "clients",
             body=_C.create, response=_C.out, status=201, access="employee"),
    endpoint("GET", r"/api/clients/{id:\d+}", api.get_client, "Read a client", "clients", response=_C.out,
             access="employee"),
    endpoint("PATCH", r"/api/clients/{id:\d+}", api.update_client, "Change a client", "clients", body=_C.patch,
             response=_C.out, access="employee"),
    endpoint("POST", r"/api/clients/{id:\d+}/phones", api.add_phone, "Attach a number to a client", "clients",
             body=_P.create, response=_P.out, status=201, access="employee"),
    endpoint("GET", "/api/phones", api.list_phones, "List numbers, by client or by a number as dialled", "clients",
             query=_P.filters, response=_P.out, paged=True, access="employee"),
    endpoint("GET", r"/api/phones/{id:\d+}", api.get_phone, "Read one number", "clients", response=_P.out,
             access="employee"),
    endpoint("PATCH", r"/api/phones/{id:\d+}", api.update_phone, "Change a number or its label", "clients",
             body=_P.patch, response=_P.out, access="employee"),
    endpoint("DELETE", r"/api/phones/{id:\d+}", api.delete_phone, "Remove a number from its client", "clients",
             status=204, access="employee"),
    *_crud("agreement", "agreements"),
    *_crud("promise", "promises"),
    *_crud("note", "notes"),
    *_crud("payment", "money", writes="supervisor"),
    *_crud("receivable", "money", writes="supervisor"),
    endpoint("GET", "/api/kpi/me", kpi_api.api_kpi_me, "My KPIs and bonus this month", "kpi", name="api_kpi_me",
             response_doc=_OBJ, access="employee"),
    endpoint("GET", r"/api/kpi/employee/{id:\d{1,10}}", kpi_api.api_kpi_employee,
             "One employee's KPIs (supervisors)", "kpi", name="api_kpi_employee", response_doc=_OBJ, access="employee"),
    endpoint("GET", "/api/kpi/dashboard", kpi_api.api_dashboard, "The team's KPIs (supervisors)", "kpi",
             name="api_kpi_dashboard", response_doc=_OBJ, access="supervisor"),
    endpoint("GET", "/api/plans", kpi_api.api_plans_get, "Plans of a month (supervisors)", "kpi",
             name="api_plans_get", response_doc=_OBJ, access="supervisor"),
    endpoint("PUT", "/api/plans", kpi_api.api_plans_put, "Set the plans of a month (supervisors)", "kpi",
             name="api_plans_put", response_doc=_OBJ, access="supervisor"),
    endpoint("GET", "/api/audit", api.audit_trail, "Changes to money and KPI inputs: who, when, old -> new "
             "(supervisors)", "audit", name="api_audit", response_doc=_OBJ, access="supervisor"),
)
API_ROUTES: tuple[Route, ...] = tuple(r for r in ROUTES if r.api)


def setup_routes(app: web.Application) -> None:
    for route in ROUTES:
        handler = guarded(route)  # its access, checked before the handler runs
        if route.method == "GET":  # answers HEAD too
            app.router.add_get(route.path, handler, name=route.name)
        else:
            app.router.add_route(route.method, route.path, handler, name=route.name)
    # static assets of the desk (web/static): a directory, not a handler, so not in ROUTES
    app.router.add_static("/static/", WEB_ROOT / "static", name="static", append_version=True)
