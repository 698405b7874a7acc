"""KPI pages in headless Chromium against the real application: a supervisor reads the
dashboard, sees the chart and drills down; a manager presses the earnings button on the
desk, sees the breakdown, and the figure moves when a counted contact is pushed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.server.keys import DB, HUB
from callpop.store.employees import EmployeeError, save_employee
from callpop.store.models import Call, CallParticipant, Contact, Employee, Plan
from tests.support.browser import PASSWORD, Live, wait_for_js

Desk = Callable[[str], Awaitable[Any]]


async def create_employee(session: AsyncSession, login: str, name: str, role: str, password: str,
                          extensions: Sequence[str] = ()) -> Employee:
    """A new employee with extensions; flushes, no commit."""
    if await session.scalar(select(Employee.id).where(Employee.login == login.strip())) is not None:
        raise EmployeeError(f"login: {login!r} already exists")
    update = await save_employee(session, login, name=name, role=role, password=password,
                                 extensions=list(extensions))
    employee = await session.get(Employee, update.employee_id)
    assert employee is not None
    await session.refresh(employee, ["extensions"])
    return employee



def _month_start() -> dt.datetime:
    today = dt.datetime.now(ZoneInfo("Europe/Moscow")).date().replace(day=1)
    return dt.datetime.combine(today, dt.time(), ZoneInfo("Europe/Moscow")).astimezone(dt.UTC)


async def _contacts(live: Live, employee_id: int, n: int, first: int = 0) -> None:
    start = _month_start()
    now = dt.datetime.now(dt.UTC)
    async with live.app[DB].sessions() as s:
        for i in range(first, first + n):
            when = start + (now - start) * (i + 1) / 40
            call = Call(pbx_id="main", call_key=f"kpi-{employee_id}-{i}", direction="inbound",
                        client_id=live.client_id, started_at=when, answered_at=when, outcome="answered",
                        talk_seconds=90)
            s.add(call)
            await s.flush()
            s.add(Contact(call_id=call.id, employee_id=employee_id, client_id=live.client_id, direction="inbound",
                          started_at=when, talk_seconds=90, counted=True))
        await s.commit()


async def _missed_calls(live: Live) -> None:
    """A queue call that rang anna and boris and was abandoned; a call anna dialled that
    the client did not pick up."""
    when = _month_start() + (dt.datetime.now(dt.UTC) - _month_start()) / 2
    async with live.app[DB].sessions() as s:
        queue = Call(pbx_id="main", call_key="queue-1", direction="inbound", client_id=live.client_id,
                     started_at=when, outcome="missed")
        dialled = Call(pbx_id="main", call_key="out-1", direction="outbound", client_id=live.client_id,
                       started_at=when, outcome="missed")
        s.add_all([queue, dialled])
        await s.flush()
        s.add_all([CallParticipant(call_id=queue.id, extension="101", employee_id=live.anna_id),
                   CallParticipant(call_id=queue.id, extension="102", employee_id=live.boris_id),
                   CallParticipant(call_id=dialled.id, extension="101", employee_id=live.anna_id)])
        await s.commit()


async def _supervisor(live: Live) -> None:
    async with live.app[DB].sessions() as s:
        await create_employee(s, "sue", "Sue Visor", "supervisor", PASSWORD, [])
        s.add(Plan(employee_id=live.anna_id, month=_month_start().astimezone(ZoneInfo("Europe/Moscow")).date(),
                   kpi="contacts", target=Decimal(10)))
        await s.commit()


async def test_supervisor_dashboard_chart_and_drill_down(open_desk: Desk, live: Live) -> None:
    await _supervisor(live)
    await _contacts(live, live.anna_id, 4)
    await _contacts(live, live.boris_id, 2, first=10)
    await _missed_calls(live)
    page = await open_desk("sue")
    await page.click("nav a[href='/dashboard']")
    await page.wait_for_selector("#kpi-table")
    # each manager the queue rang missed it; the company missed one call, not two or three
    for who in (live.anna_id, live.boris_id):
        missed = page.locator(f"#kpi-table tr[data-employee='{who}'] td[data-kpi=missed]")
        assert (await missed.inner_text()).strip() == "1"
    assert (await page.locator("#kpi-table tr.sum-row td[data-kpi=missed]").inner_text()).strip() == "1"
    chart = page.locator("#contacts-chart svg.chart")
    assert await chart.count() == 1
    assert await chart.is_visible()
    assert await page.locator(f"svg.chart g.series[data-employee='{live.anna_id}']").get_attribute("data-total") == "4"
    assert await page.locator(f"svg.chart g.series[data-employee='{live.boris_id}']").get_attribute("data-total") == "2"
    box = await chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 80  # it is drawn, not collapsed
    row = page.locator(f"#kpi-table tr[data-employee='{live.anna_id}']")
    assert (await row.locator("td.fact[data-kpi=contacts]").inner_text()).strip() == "4"
    assert (await row.locator("td.pct").first.inner_text()).strip() == "40%"
    await row.locator("td.fact[data-kpi=contacts] a").click()
    await page.wait_for_selector("#drill-table")
    assert await page.locator("#drill-table tbody tr").count() == 4
    assert "Иван Петров" in (await page.locator("#drill-table").inner_text())
    assert page.dialogs == []


async def test_manager_presses_the_earnings_button(open_desk: Desk, live: Live) -> None:
    await _supervisor(live)
    await _contacts(live, live.anna_id, 5)
    page = await open_desk("anna")
    await page.click("#earnings-button")
    await page.wait_for_selector("#earnings-table")
    rows = page.locator("#earnings-table tbody tr")
    assert await rows.count() == 4
    contacts = page.locator("#earnings-table tr[data-kpi=contacts]")
    assert (await contacts.locator("[data-field=fact]").inner_text()).strip() == "5"
    assert (await contacts.locator("[data-field=plan]").inner_text()).strip() == "10"
    assert (await contacts.locator("[data-field=achievement]").inner_text()).strip() == "50%"
    # 50 % of plan: half of 50 000 x 0.4
    assert (await page.locator("[data-field=earned]").inner_text()).strip() == "10,000.00\u00a0RUB"
    # why and how much more: 5 of 10 contacts is 50 %, the next step is the whole plan
    hint = await contacts.locator("[data-field=hint]").inner_text()
    assert hint.strip() == "5 more contacts to reach the next step (100% of the plan)"
    # a counted contact is pushed: the page refetches by itself
    await _contacts(live, live.anna_id, 1, first=30)
    live.app[HUB].publish({"type": "kpi_changed", "employee_id": live.anna_id}, employee_ids=(live.anna_id,))
    await wait_for_js(page, "document.querySelector('#earnings-table tr[data-kpi=contacts] [data-field=fact]')"
                            ".textContent.trim() == '6'")
    assert (await page.locator("[data-field=earned]").inner_text()).strip() == "12,000.00\u00a0RUB"
    # a manager cannot open a colleague's figures
    resp = await page.goto(f"{live.url}/earnings?employee={live.boris_id}")
    assert resp is not None and resp.status == 403
    assert page.dialogs == []


async def test_narrow_dashboard_keeps_overdue_reachable_and_total_drills_into_everyone(open_desk: Desk,
                                                                                        live: Live) -> None:
    await _supervisor(live)
    await _contacts(live, live.anna_id, 3)
    await _contacts(live, live.boris_id, 2, first=10)
    page = await open_desk("sue")
    await page.set_viewport_size({"width": 760, "height": 700})
    await page.goto(f"{live.url}/dashboard")
    await page.wait_for_selector("#kpi-table")
    # the table scrolls inside its box, not the page; the manager column stays in view
    box = page.locator("#kpi-table").locator("xpath=..")
    assert await box.evaluate("el => el.scrollWidth > el.clientWidth")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    overdue = page.locator(f"#kpi-table tr[data-employee='{live.anna_id}'] td[data-kpi=overdue]")
    await overdue.scroll_into_view_if_needed()
    o = await overdue.bounding_box()
    assert o is not None and o["x"] + o["width"] <= 760
    name = await page.locator(f"#kpi-table tr[data-employee='{live.anna_id}'] th[scope=row]").bounding_box()
    assert name is not None and name["x"] >= 0 and name["x"] < 100  # sticky: still at the left edge
    await page.locator("#kpi-table tr.sum-row td.fact[data-kpi=contacts] a").click()
    await page.wait_for_selector("#drill-table")
    assert await page.locator("#drill-table tbody tr").count() == 5
    text = await page.locator("#drill-table").inner_text()
    assert text.count("Анна Смирнова") == 3 and text.count("Борис Орлов") == 2  # the Manager column
    assert page.dialogs == []
