"""The KPI URLs (helper-7's feature), registered by ``routes.setup_routes`` in one call."""

from __future__ import annotations

from aiohttp import web

from callpop.server.kpi import api as kpi_api
from callpop.server.kpi import pages as kpi_pages

__all__ = ["setup_kpi_routes"]


def setup_kpi_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/earnings", kpi_pages.earnings_page, name="earnings")
    r.add_get("/dashboard", kpi_pages.dashboard, name="dashboard")
    r.add_get("/dashboard/drill", kpi_pages.drill_page, name="dashboard_drill")
    r.add_post("/dashboard/plans", kpi_pages.plans_submit, name="dashboard_plans")
    r.add_get("/dashboard.csv", kpi_api.dashboard_csv, name="dashboard_csv")
    r.add_get("/api/kpi/me", kpi_api.api_kpi_me, name="api_kpi_me")
    r.add_get(r"/api/kpi/employee/{id:\d{1,10}}", kpi_api.api_kpi_employee, name="api_kpi_employee")
    r.add_get("/api/kpi/dashboard", kpi_api.api_dashboard, name="api_kpi_dashboard")
    r.add_get("/api/plans", kpi_api.api_plans_get, name="api_plans_get")
    r.add_put("/api/plans", kpi_api.api_plans_put, name="api_plans_put")
