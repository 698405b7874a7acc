"""KPI pages over HTTP through the real app: permissions, earnings, dashboard, drill-down,
plans (form and API) and the CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Plan
from tests.support.kpi_rows import FACTORY_PASSWORD, Site, client, contact, employee, serve

PASSWORD = FACTORY_PASSWORD


async def csrf(c: TestClient, path: str = "/dashboard") -> str:
    return (await c.get(path)).headers["X-CSRF-Token"]


def this_month() -> dt.date:
    return dt.datetime.now(ZoneInfo("Europe/Moscow")).date().replace(day=1)


@pytest.fixture
async def site(db: Database, settings: Settings) -> AsyncIterator[Site]:
    ids: dict[str, int] = {}
    async with db.sessions() as s:
        anna = await employee(s, "Анна <b>Смирнова</b>", "101", login="anna")
        boris = await employee(s, "=Boris, \"the\" closer", "102", login="boris")
        sue = await employee(s, "Sue Visor", role="supervisor", login="sue")
        ids.update(anna=anna.id, boris=boris.id, sue=sue.id)
        c = await client(s, "ООО Ромашка", responsible=anna)
        now = dt.datetime.now(dt.UTC)
        month_start = dt.datetime.combine(this_month(), dt.time(), ZoneInfo("Europe/Moscow")).astimezone(dt.UTC)
        for i in range(3):  # three counted contacts this month (at most "now")
            when = month_start + (now - month_start) * (i + 1) / 4
            await contact(s, anna, c, when)
        await contact(s, boris, c, month_start + (now - month_start) / 2)
        s.add(Plan(employee_id=anna.id, month=this_month(), kpi="contacts", target=Decimal(6)))
        await s.commit()
    async with serve(db, settings, ids) as result:
        yield result


async def test_manager_sees_own_earnings_and_not_anothers(site: Site) -> None:
    anna = await site.login("anna")
    resp = await anna.get("/api/kpi/me")
    data = await resp.json()
    assert resp.status == 200
    contacts = next(k for k in data["kpis"] if k["kpi"] == "contacts")
    assert (contacts["fact"], contacts["plan"], contacts["achievement"]) == (3.0, 6.0, 50.0)
    # 50 % of plan, threshold 50: pays 0.5 of 50 000 x 0.4
    assert contacts["money"] == 10000.0 and data["earned"] == 10000.0
    page = await anna.get("/earnings")
    html = await page.text()
    assert page.status == 200 and "10\u00a0000,00\u00a0₽" in html  # Russian money, as Babel writes it
    assert "Анна &lt;b&gt;Смирнова&lt;/b&gt;" in html and "<b>Смирнова" not in html
    for path in (f"/api/kpi/employee/{site.ids['boris']}", f"/earnings?employee={site.ids['boris']}",
                 f"/dashboard/drill?employee={site.ids['boris']}&kpi=contacts"):
        assert (await anna.get(path)).status == 403, path
    assert (await anna.get(f"/api/kpi/employee/{site.ids['anna']}")).status == 200
    for path in ("/dashboard", "/dashboard.csv", "/api/kpi/dashboard", "/api/plans"):
        assert (await anna.get(path)).status == 403, path


async def test_pages_need_a_login(site: Site) -> None:
    c = TestClient(site.server)
    await c.start_server()
    site.clients.append(c)
    assert (await c.get("/api/kpi/me")).status == 401
    resp = await c.get("/dashboard", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")


async def test_supervisor_dashboard_chart_and_drill_down(site: Site) -> None:
    sue = await site.login("sue")
    resp = await sue.get("/dashboard")
    html = await resp.text()
    assert resp.status == 200
    series = re.findall(r'<g class="series" data-employee="(\d+)" data-total="(\d+)">', html)
    assert sorted(series) == sorted([(str(site.ids["anna"]), "3"), (str(site.ids["boris"]), "1")])
    assert "&lt;b&gt;" in html and "<b>Смирнова" not in html
    link = re.search(r'href="(/dashboard/drill\?employee=' + str(site.ids["anna"]) + r'&amp;kpi=contacts[^"]*)"',
                     html)
    assert link
    drill = await sue.get(link.group(1).replace("&amp;", "&"))
    body = await drill.text()
    assert drill.status == 200 and body.count("ООО Ромашка") == 3
    data = await (await sue.get("/api/kpi/dashboard?period=custom&from=2020-01-01&to=2020-01-31")).json()
    assert all(m["kpis"]["contacts"]["fact"] == 0 for m in data["managers"])
    assert len(data["days"]) == 31
    sue_earnings = await sue.get(f"/earnings?employee={site.ids['anna']}")
    assert sue_earnings.status == 200


@pytest.mark.parametrize("query", ["period=year", "period=custom&from=2026-03-05", "period=day&date=soon",
                                   "period=custom&from=2026-03-05&to=2026-03-01"])
async def test_bad_period_is_a_400_naming_the_field(site: Site, query: str) -> None:
    sue = await site.login("sue")
    resp = await sue.get("/api/kpi/dashboard?" + query)
    assert resp.status == 400
    assert (await resp.json())["field"] in ("period", "from", "to", "date")


async def test_plans_api_validates_and_saves(site: Site) -> None:
    sue = await site.login("sue")
    token = await csrf(sue)
    month = this_month().isoformat()[:7]
    anna = site.ids["anna"]
    bad = [
        ({"month": "March", "plans": []}, "month"),
        ({"month": month, "plans": {}}, "plans"),
        ({"month": month, "plans": [{"employee_id": "x", "kpi": "contacts", "target": 1}]}, "plans[0].employee_id"),
        ({"month": month, "plans": [{"employee_id": anna, "kpi": "calls", "target": 1}]}, "plans[0].kpi"),
        ({"month": month, "plans": [{"employee_id": anna, "kpi": "contacts", "target": -5}]}, "plans[0].target"),
        ({"month": month, "plans": [{"employee_id": anna, "kpi": "contacts", "target": "lots"}]}, "plans[0].target"),
        ({"month": month, "plans": [{"employee_id": 999999, "kpi": "contacts", "target": 5}]}, "employee_id"),
    ]
    for body, field in bad:
        resp = await sue.put("/api/plans", json=body, headers={"X-CSRF-Token": token})
        assert resp.status == 400, body
        assert (await resp.json())["field"] == field
    assert (await sue.put("/api/plans", data="{not json", headers={"X-CSRF-Token": token,
                                                                   "Content-Type": "application/json"})).status == 400
    # without the CSRF header a script on another site cannot change plans
    assert (await sue.put("/api/plans", json={"month": month, "plans": []})).status == 403
    ok = await sue.put("/api/plans", json={"month": month, "plans": [
        {"employee_id": anna, "kpi": "contacts", "target": 4},
        {"employee_id": anna, "kpi": "win_rate", "target": 35.5}]}, headers={"X-CSRF-Token": token})
    assert ok.status == 200 and (await ok.json())["changed"] == 2
    got = await (await sue.get(f"/api/plans?month={month}")).json()
    assert {(p["kpi"], p["target"]) for p in got["plans"]} == {("contacts", 4.0), ("win_rate", 35.5)}
    manager = await site.login("anna")
    me = await (await manager.get("/api/kpi/me")).json()
    assert next(k for k in me["kpis"] if k["kpi"] == "contacts")["achievement"] == 75.0


async def test_plans_form_on_the_dashboard(site: Site) -> None:
    sue = await site.login("sue")
    token = await csrf(sue)
    boris = site.ids["boris"]
    form = {"csrf_token": token, "month": this_month().isoformat()[:7], f"plan-{boris}-contacts": "10",
            f"plan-{site.ids['anna']}-contacts": ""}
    resp = await sue.post("/dashboard/plans", data=form, allow_redirects=False)
    assert resp.status == 303
    page = await (await sue.get(resp.headers["Location"])).text()
    assert f'name="plan-{boris}-contacts"' in page and 'value="10"' in page
    plans = await (await sue.get("/api/plans")).json()
    assert [(p["employee_id"], p["kpi"], p["target"]) for p in plans["plans"]] == [(boris, "contacts", 10.0)]
    bad = await sue.post("/dashboard/plans", data={**form, f"plan-{boris}-contacts": "ten"})
    assert bad.status == 400
    no_token = await sue.post("/dashboard/plans", data={k: v for k, v in form.items() if k != "csrf_token"})
    assert no_token.status == 403


async def test_csv_export_is_excel_friendly(site: Site) -> None:
    sue = await site.login("sue")
    plans = [{"employee_id": site.ids["anna"], "kpi": "win_rate", "target": 40},
             {"employee_id": site.ids["boris"], "kpi": "win_rate", "target": 60},
             {"employee_id": site.ids["boris"], "kpi": "contacts", "target": 4}]
    saved = await sue.put("/api/plans", json={"month": this_month().isoformat()[:7], "plans": plans},
                          headers={"X-CSRF-Token": await csrf(sue)})
    assert saved.status == 200
    resp = await sue.get("/dashboard.csv?period=month")
    raw = await resp.read()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    assert raw.startswith(b"\xef\xbb\xbf")
    # the default language is Russian: the export is for Excel in a Russian locale
    people = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert people[0][:4] == ["Менеджер", "Контакты с постоянными клиентами: факт",
                             "Контакты с постоянными клиентами: план", "Контакты с постоянными клиентами: %"]
    assert {r[0]: r[1:4] for r in people[1:]}["Анна <b>Смирнова</b>"] == ["3", "6", "50"]
    assert people[-1][0] == "Итого"
    # in English it stays the plain machine-readable export
    await sue.patch("/api/me", json={"language": "en"}, headers={"X-CSRF-Token": await csrf(sue)})
    resp = await sue.get("/dashboard.csv?period=month")
    raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:5] == ["employee_id", "manager", "contacts_fact", "contacts_plan", "contacts_pct"]
    by_name = {r[1]: r for r in rows[1:]}
    assert by_name["Анна <b>Смирнова</b>"][2:5] == ["3", "6", "50"]
    # a comma and quotes survive quoting; a leading "=" is defused for Excel
    assert by_name["'=Boris, \"the\" closer"][2] == "1"
    total = dict(zip(rows[0], rows[-1], strict=True))
    assert total["manager"] == "Total" and total["contacts_fact"] == "4"
    assert total["contacts_plan"] == "10" and total["contacts_pct"] == "40"  # plans summed: 6 + 4
    assert total["win_rate_plan"] == "50"  # percentage plans averaged: (40 + 60) / 2


async def test_numbers_reach_a_russian_reader_as_russian_writes_them(site: Site) -> None:
    sue = await site.login("sue")
    month = this_month().isoformat()[:7]
    plans = [{"employee_id": site.ids["anna"], "kpi": "win_rate", "target": "35.5"}]
    saved = await sue.put("/api/plans", json={"month": month, "plans": plans},
                          headers={"X-CSRF-Token": await csrf(sue)})
    assert saved.status == 200
    anna = await site.login("anna")
    html = (await (await anna.get("/earnings")).text()).replace("\u00a0", " ").replace("\u202f", " ")
    # 3 of 6 contacts: 50 %, the next step is the whole plan; win rate has a plan but no figures
    assert "Контактов до следующей ступени: ещё 3 (100 % плана)" in html
    assert "В этом месяце пока нет данных: выплата начинается с 50 % плана." in html
    assert "35,5 %" in html and "10 000,00 ₽" in html and "вес 40 %" in html
    assert not re.search(r"\d%|\d\.\d", re.sub(r"<(meter|link|script)[^>]*>", "", html))  # no "100%", no "9.11"
    dashboard = (await (await sue.get("/dashboard")).text()).replace("\u00a0", " ")
    audit = dashboard[dashboard.index('id="audit"'):]
    assert "<td>Запись" not in audit and "win_rate" not in audit  # the KPI in words, not its code
    assert "35,5" in audit and "35.5" not in audit
    assert re.search(r"\d\d\.\d\d\.\d{2,4}", audit)  # the moment in the Russian format, not ISO
    await anna.patch("/api/me", json={"language": "en"}, headers={"X-CSRF-Token": await csrf(anna, "/earnings")})
    english = (await (await anna.get("/earnings")).text()).replace("\u00a0", " ")
    assert "3 more contacts to reach the next step (100% of the plan)" in english and "35.5%" in english


async def test_period_dates_are_read_in_the_users_format(site: Site) -> None:
    sue = await site.login("sue")  # Russian by default: 01.03.2026, or ISO as links write it
    data = await (await sue.get("/api/kpi/dashboard?period=custom&from=01.03.2026&to=2026-03-05")).json()
    assert len(data["days"]) == 5
    page = await (await sue.get("/dashboard?period=custom&from=01.03.2026&to=05.03.2026")).text()
    assert 'name="from" value="01.03.2026" placeholder="дд.мм.гггг"' in page
    await sue.patch("/api/me", json={"language": "en"}, headers={"X-CSRF-Token": await csrf(sue)})
    bad = await sue.get("/api/kpi/dashboard?period=custom&from=01.03.2026&to=2026-03-05")
    assert bad.status == 400
    assert (await bad.json())["message"] == "From: enter a date like 2026-03-31"
