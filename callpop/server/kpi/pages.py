"""KPI pages: the manager's "how much have I earned" and the supervisor's dashboard.

A manager sees only their own figures: every handler takes the employee from the session,
and a manager naming someone else gets 403. Supervisors (and admins) see everyone, edit
plans and drill from any number down to the rows behind it. All numbers come from the
database through ``view``; all text reaches the templates as data (autoescaped).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from callpop import kpi
from callpop.accounts import CurrentUser
from callpop.kpi_motivation import Hint, hint_for
from callpop.server.auth import require_role, require_user
from callpop.server.errors import Refusal
from callpop.server.keys import DB, SETTINGS
from callpop.server.kpi.audit_view import present_audit
from callpop.server.kpi.charts import Series, color_for, line_chart
from callpop.server.kpi.drill_view import present
from callpop.server.kpi.view import (
    DashboardView,
    bad_request,
    cell_texts,
    load_dashboard,
    local_today,
    missed_grid,
    period_from_query,
    plan_inputs,
    table_body,
    table_rows,
    utcnow,
)
from callpop.server.l10n import Formats, formats_for
from callpop.server.templating import _translator, language, render
from callpop.store import audit
from callpop.store.kpi.drill import COLUMN_LABELS, DRILL_KINDS, LIMIT, NUMERIC_COLUMNS, PAGE_SIZE, VALUE_LABELS, drill
from callpop.store.kpi.plans import PlanError, PlanItem, parse_month, save_plans
from callpop.store.kpi.queries import earnings_for

__all__ = ["SUPERVISORS", "dashboard", "drill_page", "earnings_page", "plans_submit", "target_employee"]

log = logging.getLogger(__name__)

SUPERVISORS = ("supervisor", "admin")
_MAX_ID = 2**31 - 1


def target_employee(request: web.Request, user: CurrentUser, value: str | None) -> int:
    """Whose figures: yourself, or anyone if you are a supervisor; a manager asking for
    someone else gets 403 (not 404: the rule is about permission, not existence)."""
    if value is None or value == "":
        return user.id
    try:
        emp = int(value)
    except ValueError:
        raise bad_request(ValueError(f"employee: expected an employee id, found {value[:20]!r}")) from None
    if not 1 <= emp <= _MAX_ID:
        raise bad_request(ValueError(f"employee: expected an employee id, found {value[:20]!r}"))
    if emp != user.id and not user.is_supervisor:
        raise Refusal(403, "a manager sees only their own figures", field="employee")
    return emp


def _hint_text(hint: Hint, say: Callable[..., str], f: Formats) -> str:
    """The hint in words, its numbers as the reader writes them (``100 %``, ``2,5``)."""
    shown = {name: f.percent(value) if name == "step" else f.number(value) for name, value in hint.params.items()}
    return say(hint.message, **shown)


def _period_query(period: kpi.Period) -> dict[str, str]:
    if period.kind == "custom":
        return {"period": "custom", "from": period.start.isoformat(), "to": period.last.isoformat()}
    return {"period": period.kind, "date": period.start.isoformat()}


async def earnings_page(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    employee_id = target_employee(request, user, request.query.get("employee"))
    settings = request.app[SETTINGS]
    async with request.app[DB].sessions() as session:
        row, result = await earnings_for(session, employee_id, settings, utcnow())
    if row is None:
        raise Refusal(404, "no such employee", field="employee")
    today = local_today(settings, utcnow())
    hints = [hint_for(line, settings.bonus) for line in result.lines]
    lang = language(request)
    hint_texts = [_hint_text(hint, _translator(lang), formats_for(lang)) for hint in hints]
    return render(request, "earnings.html", earnings=result, who=row.name, employee_id=employee_id, hints=hints,
                  hint_texts=hint_texts,
                  own=employee_id == user.id, month=today.replace(day=1), units=kpi.KPI_UNITS, labels=kpi.KPI_LABELS,
                  api_path="/api/kpi/me" if employee_id == user.id else f"/api/kpi/employee/{employee_id}")


async def dashboard_view(request: web.Request, now: dt.datetime) -> DashboardView:
    """The dashboard's figures for the period in the query (supervisors only): shared by the
    page, its JSON and its CSV export."""
    require_role(request, *SUPERVISORS)
    settings = request.app[SETTINGS]
    try:
        period = period_from_query(request.query, local_today(settings, now), language(request))
    except kpi.PeriodError as exc:
        raise bad_request(exc) from None
    return await load_dashboard(request.app[DB].sessions, period, settings, now)


async def dashboard(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    now = utcnow()
    view = await dashboard_view(request, now)
    async with request.app[DB].sessions() as session:
        audit_items = (await audit.list_changes(session, {"limit": "20"}))["items"]
    period = view.period
    plan_month = period.start.replace(day=1)
    # the plan form's values: the monthly plans manager_facts already read (no second query)
    plan_values: dict[tuple[int, str], float] = {
        (r.employee_id, name): monthly[plan_month]
        for r in view.rows if r.raw is not None and r.employee_id is not None
        for name, monthly in r.raw.plans.items() if plan_month in monthly}
    # the chart stops at today: days still to come are not zeros
    shown = max(1, min(len(view.days), (local_today(settings, now) - period.start).days + 1))
    series = [Series(r.employee_id or 0, r.name, view.contacts_per_day.get(r.employee_id or 0, [])[:shown])
              for r in view.rows]
    _ = _translator(language(request))
    chart = line_chart(view.days[:shown], series, title=_("Counted contacts per day per manager"))
    legend = [(s.key, s.name, *color_for(i), sum(s.values)) for i, s in enumerate(series)]
    query = _period_query(period)
    qs = urlencode(query)
    f = formats_for(language(request))
    rows = table_rows(view, qs, f)
    return render(request, "dashboard.html", view=view, chart=chart, legend=legend, units=kpi.KPI_UNITS,
                  labels=kpi.KPI_LABELS, period_labels=kpi.PERIOD_LABELS, table_body=table_body(rows),
                  plan_inputs=plan_inputs(rows, {key: f"{value:g}" for key, value in plan_values.items()}),
                  kpis=kpi.KPI_NAMES, period=period, query=query, qs=qs, rows=rows,
                  totals=[(c.kpi, *cell_texts(c, f)) for c in view.totals.cells],
                  missed_grid=missed_grid(view, qs), plan_month=plan_month, saved=_saved_count(request),
                  audit_items=present_audit(audit_items, f, _, settings.kpi.timezone))


def _saved_count(request: web.Request) -> int | None:
    """``?saved=N`` after saving plans: a count, never text echoed into the page."""
    raw = request.query.get("saved", "")
    return int(raw) if raw.isdigit() and len(raw) <= 6 else None


def _whole(query: Any, name: str, default: int, low: int, high: int) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 9) or not low <= int(value) <= high:
        raise bad_request(ValueError(f"{name}: expected a whole number from {low} to {high}, found {value[:20]!r}"))
    return int(value)


async def drill_page(request: web.Request) -> web.StreamResponse:
    """The rows behind one number, a page at a time (``page`` from 1, ``limit`` rows, default
    ``PAGE_SIZE``); ``employee=all`` (supervisors) is every manager, the Total row's drill."""
    user = require_user(request)
    settings = request.app[SETTINGS]
    now = utcnow()
    everyone = request.query.get("employee") == "all"
    if everyone:
        require_role(request, *SUPERVISORS)
    employee_id = None if everyone else target_employee(request, user, request.query.get("employee"))
    page = _whole(request.query, "page", 1, 1, 100_000)
    limit = _whole(request.query, "limit", PAGE_SIZE, 1, LIMIT)
    kind = request.query.get("kpi", "contacts")
    if kind not in DRILL_KINDS:
        raise bad_request(ValueError(f"kpi: expected one of {', '.join(DRILL_KINDS)}, found {kind[:30]!r}"))
    try:
        period = period_from_query(request.query, local_today(settings, now), language(request))
    except kpi.PeriodError as exc:
        raise bad_request(exc) from None
    async with request.app[DB].sessions() as session:
        result = await drill(session, kind, employee_id, period, settings, now, offset=(page - 1) * limit,
                             limit=limit)
        from callpop.store.kpi.queries import managers

        people = [] if employee_id is None else await managers(session, [employee_id])
    if employee_id is not None and not people:
        raise Refusal(404, "no such employee", field="employee")
    query = {"employee": "all" if employee_id is None else str(employee_id), "kpi": kind, **_period_query(period)}
    if limit != PAGE_SIZE:
        query["limit"] = str(limit)

    def page_url(n: int) -> str:
        return "/dashboard/drill?" + urlencode({**query, "page": str(n)})

    lang = language(request)
    say = _translator(lang)
    shown_columns, shown_rows = present(result, formats_for(lang),
                                        lambda code: say(VALUE_LABELS[code]) if code in VALUE_LABELS else code)
    return render(request, "kpi_drill.html", result=result, shown_columns=shown_columns, shown_rows=shown_rows,
                  who=people[0][1] if people else None, period=period,
                  labels=kpi.KPI_LABELS, column_labels=COLUMN_LABELS, value_labels=VALUE_LABELS,
                  numeric=NUMERIC_COLUMNS, first_row=result.offset + 1, last_row=result.offset + len(result.rows),
                  prev_url=page_url(page - 1) if page > 1 else None,
                  next_url=page_url(page + 1) if result.more else None,
                  back="/dashboard?" + urlencode(_period_query(period)) if user.is_supervisor else "/earnings")


async def plans_submit(request: web.Request) -> web.StreamResponse:
    """The dashboard's plan form: fields ``plan-<employee>-<kpi>``; empty removes a plan."""
    user = require_role(request, *SUPERVISORS)
    form = await request.post()
    items: list[PlanItem] = []
    try:
        month = parse_month(form.get("month"))
        for key, value in form.items():
            if not key.startswith("plan-"):
                continue
            _, emp_text, name = key.split("-", 2)
            if not emp_text.isdigit() or name not in kpi.KPI_NAMES:
                raise PlanError(f"{key[:60]}: not a plan field")
            from callpop.store.kpi.plans import parse_items

            items.extend(parse_items([{"employee_id": int(emp_text), "kpi": name, "target": str(value)}]))
        async with request.app[DB].sessions() as session:
            changed = await save_plans(session, month, items, changed_by=user.id, source="page")
            await session.commit()
    except PlanError as exc:
        raise bad_request(exc) from None
    user = require_user(request)
    log.info("plans for %s saved by %s: %d change(s)", month, user.login, changed)
    back: dict[str, Any] = {"period": "month", "date": month.isoformat(), "saved": str(changed)}
    raise web.HTTPSeeOther("/dashboard?" + urlencode(back))


