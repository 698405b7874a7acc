"""KPI data as JSON and CSV, and the plans API.

``GET /api/kpi/me`` is what the earnings page refetches after a ``kpi_changed`` push; it is
one manager's month, a handful of indexed queries. ``/dashboard.csv`` is the dashboard table
for Excel: UTF-8 with a BOM (so Cyrillic names open correctly), commas, fields quoted by the
csv module whenever they hold a comma, quote or line break, and formula-looking names defused.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import unicodedata
from typing import Any

from aiohttp import web

from callpop import kpi
from callpop.server.auth import require_role, require_user
from callpop.server.errors import Refusal
from callpop.server.i18n import gettext_for
from callpop.server.keys import DB, SETTINGS
from callpop.server.kpi.pages import SUPERVISORS, dashboard_view, target_employee
from callpop.server.kpi.view import DashboardView, bad_request, local_today, utcnow
from callpop.server.templating import language
from callpop.store.kpi.plans import PlanError, list_plans, parse_items, parse_month, save_plans
from callpop.store.kpi.queries import earnings_for

__all__ = ["api_dashboard", "api_kpi_employee", "api_kpi_me", "api_plans_get", "api_plans_put", "dashboard_csv"]

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


async def _earnings_json(request: web.Request, employee_id: int) -> web.Response:
    settings = request.app[SETTINGS]
    now = utcnow()
    async with request.app[DB].sessions() as session:
        row, result = await earnings_for(session, employee_id, settings, now)
    if row is None:
        raise Refusal(404, "no such employee", field="employee")
    return _json({"employee": {"id": row.employee_id, "name": row.name},
                  "month": local_today(settings, now).replace(day=1).isoformat()[:7], **result.to_json()})


async def api_kpi_me(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    return await _earnings_json(request, user.id)


async def api_kpi_employee(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    return await _earnings_json(request, target_employee(request, user, request.match_info["id"]))


async def api_dashboard(request: web.Request) -> web.StreamResponse:
    return _json((await dashboard_view(request, utcnow())).to_json())


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


_FORMULA_START = frozenset("=+-@")


def _text(value: str) -> str:
    """A name as a spreadsheet cell: text that starts like a formula gets a leading quote.

    Spreadsheets skip leading blanks and line breaks and read full-width ``＝＋－＠`` as the
    ASCII ones, so those starts are defused too."""
    head = value.lstrip(" \t\r\n\u3000\u00a0")[:1]
    if value[:1].isspace() or unicodedata.normalize("NFKC", head) in _FORMULA_START:
        return "'" + value
    return value


def dashboard_rows_for_people(view: DashboardView, lang: str) -> list[list[str]]:
    """The export a person opens in a spreadsheet: headings in their language, numbers with
    their decimal separator, no internal ids."""
    t = gettext_for(lang)
    comma = lang == "ru"

    def number(value: float | None) -> str:
        text = _cell(value)
        return text.replace(".", ",") if comma else text

    header = [t("Manager")]
    for name in kpi.KPI_NAMES:
        label = t(kpi.KPI_LABELS[name])
        header += [f"{label}: {t('fact')}", f"{label}: {t('plan')}", f"{label}: %"]
    header += [t("Missed calls"), t("Overdue promises")]
    rows = [header]
    for row in (*view.rows, view.totals):
        line = [_text(t(row.name) if row.employee_id is None else row.name)]
        for cell in row.cells:
            line += [number(cell.fact), number(cell.plan), number(cell.pct)]
        line += [str(row.missed), str(row.overdue)]
        rows.append(line)
    return rows


def dashboard_rows(view: DashboardView) -> list[list[str]]:
    header = ["employee_id", "manager"]
    for name in kpi.KPI_NAMES:
        header += [f"{name}_fact", f"{name}_plan", f"{name}_pct"]
    header += ["missed_calls", "overdue_promises"]
    rows = [header]
    for row in (*view.rows, view.totals):
        line = ["" if row.employee_id is None else str(row.employee_id), _text(row.name)]
        for cell in row.cells:
            line += [_cell(cell.fact), _cell(cell.plan), _cell(cell.pct)]
        line += [str(row.missed), str(row.overdue)]
        rows.append(line)
    return rows


async def dashboard_csv(request: web.Request) -> web.StreamResponse:
    view = await dashboard_view(request, utcnow())
    buffer = io.StringIO()
    lang = language(request)
    if lang == "ru":  # Excel in a Russian locale splits on ";" and reads "9,5" as a number
        rows, delimiter = dashboard_rows_for_people(view, lang), ";"
    else:
        rows, delimiter = dashboard_rows(view), ","
    csv.writer(buffer, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerows(rows)
    name = f"callpop-kpi-{view.period.start.isoformat()}-{view.period.last.isoformat()}.csv"
    return web.Response(body=("\ufeff" + buffer.getvalue()).encode("utf-8"),
                        headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                                 "Content-Disposition": f'attachment; filename="{name}"'})


async def api_plans_get(request: web.Request) -> web.StreamResponse:
    require_role(request, *SUPERVISORS)
    settings = request.app[SETTINGS]
    try:
        month = parse_month(request.query.get("month") or local_today(settings, utcnow()).isoformat())
    except PlanError as exc:
        raise bad_request(exc) from None
    async with request.app[DB].sessions() as session:
        plans = await list_plans(session, month)
    return _json({"month": month.isoformat()[:7], "plans": [p.to_json() for p in plans]})


async def api_plans_put(request: web.Request) -> web.StreamResponse:
    """Body ``{"month": "2026-03", "plans": [{"employee_id", "kpi", "target"}]}``; all or nothing."""
    user = require_role(request, *SUPERVISORS)
    if request.content_type != "application/json":
        raise bad_request(ValueError("body: expected Content-Type application/json"))
    if (request.content_length or 0) > MAX_BODY:
        raise bad_request(ValueError("body: too large"))
    try:
        body = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise bad_request(ValueError("body: not valid JSON")) from None
    if not isinstance(body, dict):
        raise bad_request(ValueError("body: expected an object with month and plans"))
    try:
        month = parse_month(body.get("month"))
        items = parse_items(body.get("plans"))
        async with request.app[DB].sessions() as session:
            changed = await save_plans(session, month, items, changed_by=user.id, source="api")
            await session.commit()
            plans = await list_plans(session, month)
    except PlanError as exc:
        raise bad_request(exc) from None
    log.info("plans for %s saved by %s through the API: %d change(s)", month, user.login, changed)
    return _json({"month": month.isoformat()[:7], "changed": changed, "plans": [p.to_json() for p in plans]})
