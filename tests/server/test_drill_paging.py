"""Drill-down a page at a time: 100 rows by default with next/previous links; every
figure of the dashboard (fact, plan, %, and the Total row) opens the rows behind it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from callpop.settings import Settings
from callpop.store.db import Database
from tests.support.kpi_rows import Site, client, contact, employee, serve

ANNA_CONTACTS = 250


@pytest.fixture
async def site(db: Database, settings: Settings) -> AsyncIterator[Site]:
    tz = ZoneInfo("Europe/Moscow")
    now = dt.datetime.now(dt.UTC)
    month_start = dt.datetime.combine(dt.datetime.now(tz).date().replace(day=1), dt.time(), tz).astimezone(dt.UTC)
    async with db.sessions() as s:
        anna = await employee(s, "Анна", "101", login="anna")
        boris = await employee(s, "Борис", "102", login="boris")
        sue = await employee(s, "Sue Visor", role="supervisor", login="sue")
        cl = await client(s, "ООО Ромашка", responsible=anna)
        for i in range(ANNA_CONTACTS):
            await contact(s, anna, cl, month_start + (now - month_start) * (i + 1) / (ANNA_CONTACTS + 2))
        await contact(s, boris, cl, month_start + (now - month_start) / 3)
        await s.commit()
    async with serve(db, settings, {"anna": anna.id, "boris": boris.id, "sue": sue.id}) as site:
        yield site


def _rows(html: str) -> list[str]:
    body = html.split('id="drill-table"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def _link(html: str, rel: str) -> str | None:
    m = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    return unescape(m.group(1)) if m else None


async def test_drill_pages_through_all_rows_100_at_a_time(site: Site) -> None:
    sue = await site.login("sue")
    first = await sue.get(f"/dashboard/drill?employee={site.ids['anna']}&kpi=contacts")
    html = await first.text()
    assert first.status == 200
    assert len(_rows(html)) == 100 and _link(html, "prev") is None
    seen = list(_rows(html))
    pages = 1
    while (nxt := _link(html, "next")) is not None:
        resp = await sue.get(nxt)
        html = await resp.text()
        assert resp.status == 200 and _link(html, "prev") is not None
        seen += _rows(html)
        pages += 1
    assert pages == 3 and len(_rows(html)) == ANNA_CONTACTS - 200
    assert "Строки 201–250" in html
    assert len(set(seen)) == ANNA_CONTACTS  # every row once, none repeated across pages
    everything = await (await sue.get(f"/dashboard/drill?employee={site.ids['anna']}&kpi=contacts&limit=1000")).text()
    assert len(_rows(everything)) == ANNA_CONTACTS and _link(everything, "next") is None


@pytest.mark.parametrize("query", ["page=0", "page=abc", "limit=0", "limit=5000", "page=%C2%B2"])
async def test_bad_paging_is_a_400_naming_the_field(site: Site, query: str) -> None:
    sue = await site.login("sue")
    resp = await sue.get(f"/dashboard/drill?employee={site.ids['anna']}&kpi=contacts&{query}")
    assert resp.status == 400
    assert (await resp.json(content_type=None))["field"] == query.split("=")[0]


async def test_fact_and_total_cells_open_the_drill(site: Site) -> None:
    sue = await site.login("sue")
    html = await (await sue.get("/dashboard")).text()
    row = html.split(f'<tr data-employee="{site.ids["boris"]}">', 1)[1].split("</tr>", 1)[0]
    fact = re.search(r'<td class="fact" data-kpi="contacts"><a href="([^"]+)"', row)
    assert fact and "kpi=contacts" in fact.group(1)
    # a plan or a percentage has no rows of its own: plain text, not a second link to the same rows
    assert re.search(r'<td class="plan"><a', row) is None and re.search(r'<td class="pct[^"]*"><a', row) is None
    boris = await (await sue.get(unescape(fact.group(1)))).text()
    assert len(_rows(boris)) == 1
    total = html.split('class="sum-row"', 1)[1].split("</tr>", 1)[0]
    link = re.search(r'<td class="fact" data-kpi="contacts"><a href="([^"]+)"', total)
    assert link and "employee=all" in link.group(1)
    everyone = await sue.get(unescape(link.group(1)) + "&limit=1000")
    body = await everyone.text()
    rows = _rows(body)
    assert everyone.status == 200 and len(rows) == ANNA_CONTACTS + 1
    assert sum("Борис" in r for r in rows) == 1 and sum("Анна" in r for r in rows) == ANNA_CONTACTS
    assert re.search(r'<td data-kpi="overdue"><a href="[^"]*employee=all[^"]*kpi=overdue', total)
    # a manager cannot drill into everyone
    anna = await site.login("anna")
    assert (await anna.get("/dashboard/drill?employee=all&kpi=contacts")).status == 403
