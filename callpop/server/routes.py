"""Every URL of callpop in one place: feature modules expose handlers, this maps them."""

from __future__ import annotations

from aiohttp import web

from callpop.server import api, desk, kpi_routes, monitoring, pages, pbx, ws
from callpop.server.templating import WEB_ROOT

__all__ = ["setup_routes"]


def setup_routes(app: web.Application) -> None:
    r = app.router
    # pages and the live socket (callpop/server/pages.py, callpop/server/ws.py)
    r.add_get("/", pages.desk, name="desk")
    r.add_get("/login", pages.login_form, name="login")
    r.add_post("/login", pages.login_submit)
    r.add_post("/logout", pages.logout, name="logout")
    r.add_get("/health", monitoring.health, name="health")
    r.add_get("/metrics", monitoring.metrics, name="metrics")
    r.add_get("/ws", ws.websocket, name="ws")
    # plain-text answers for the PBX's dialplan (callpop/server/pbx.py)
    r.add_get("/pbx/caller-name", pbx.caller_name, name="pbx_caller_name")
    r.add_get("/pbx/route", pbx.route, name="pbx_route")
    # the desk's other pages (callpop/server/desk.py)
    r.add_get(r"/clients/{id:\d{1,10}}", desk.client_page, name="client_page")
    r.add_get("/promises", desk.promises_page, name="promises_page")
    r.add_post("/settings/language", desk.set_language, name="set_language")
    # the JSON API, declared once in callpop/server/api.py (openapi.json is built from the same list)
    for endpoint in api.ENDPOINTS:
        r.add_route(endpoint.method, endpoint.path, endpoint.handler)
    # KPI pages and API (callpop/server/kpi_routes.py)
    kpi_routes.setup_kpi_routes(app)
    # static assets of the desk (web/static)
    r.add_static("/static/", WEB_ROOT / "static", name="static", append_version=True)
