"""A browser opening a page it may not see, or with a bad query, gets a translated HTML
page with the message and a link back; scripts and /api keep their JSON errors. Texts
made in Python for pages (the dashboard chart's title) are translated too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from callpop.settings import Settings
from callpop.store.db import Database
from tests.support.kpi_rows import Site, employee, serve

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
BAD_RANGE = "/dashboard?period=custom&from=2026-03-05&to=2026-03-01"


@pytest.fixture
async def site(db: Database, settings: Settings) -> AsyncIterator[Site]:
    async with db.sessions() as s:
        await employee(s, "Анна", "101", login="anna")
        await employee(s, "Sue Visor", role="supervisor", login="sue")
        await s.commit()
    async with serve(db, settings) as site:
        yield site


async def test_manager_opening_the_dashboard_gets_a_page_not_json(site: Site) -> None:
    anna = await site.login("anna")
    resp = await anna.get("/dashboard", headers=BROWSER)
    html = await resp.text()
    assert resp.status == 403
    assert resp.content_type == "text/html"
    assert '{"error"' not in html
    assert "У вас нет доступа к этой странице" in html  # default language: Russian
    assert "Эта страница — для руководителей" in html
    assert '<a class="back" href="/">Вернуться на рабочий стол</a>' in html
    # a script asking the same still gets JSON
    api = await anna.get("/dashboard")
    assert api.status == 403 and "error" in await api.json(content_type=None)


async def test_from_after_to_is_a_page_with_the_message_and_a_way_back(site: Site) -> None:
    sue = await site.login("sue")
    resp = await sue.get(BAD_RANGE, headers=BROWSER)
    html = await resp.text()
    assert resp.status == 400 and resp.content_type == "text/html"
    assert '{"error"' not in html
    assert "«По» не может быть раньше «С»" in html
    assert 'href="/dashboard"' in html
    # English for someone who chose English
    token = resp.headers["X-CSRF-Token"]
    await sue.post("/settings/language", data={"language": "en", "csrf_token": token, "next": "/"})
    html_en = await (await sue.get(BAD_RANGE, headers=BROWSER)).text()
    assert "to: must not be before from" in html_en and "Try again" in html_en
    # the API answers JSON even to a browser's Accept
    api = await sue.get("/api/kpi/dashboard?period=custom&from=2026-03-05&to=2026-03-01", headers=BROWSER)
    assert api.status == 400 and api.content_type == "application/json"
    assert json.loads(await api.text())["field"] == "to"


async def test_unknown_page_is_a_translated_404_page(site: Site) -> None:
    sue = await site.login("sue")
    resp = await sue.get("/no-such-page", headers=BROWSER)
    html = await resp.text()
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "Здесь ничего нет" in html and 'href="/"' in html
    assert (await sue.get("/no-such-page")).content_type != "text/html"


async def test_dashboard_chart_title_is_translated(site: Site) -> None:
    sue = await site.login("sue")
    ru = await (await sue.get("/dashboard")).text()
    assert 'aria-label="Засчитанные контакты по дням и менеджерам"' in ru
    assert "<title>Засчитанные контакты по дням и менеджерам</title>" in ru
    token = (await sue.get("/dashboard")).headers["X-CSRF-Token"]
    await sue.post("/settings/language", data={"language": "en", "csrf_token": token, "next": "/"})
    en = await (await sue.get("/dashboard")).text()
    assert "<title>Counted contacts per day per manager</title>" in en


async def test_the_routers_own_refusals_are_translated_pages(site: Site) -> None:
    sue = await site.login("sue")
    resp = await sue.get("/logout", headers=BROWSER)  # log out is a POST
    html = await resp.text()
    assert resp.status == 405 and resp.content_type == "text/html" and "POST" in resp.headers["Allow"]
    assert "Такой запрос здесь не принимается" in html and "Method Not Allowed" not in html
