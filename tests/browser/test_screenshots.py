"""Screenshots of the desk (ringing, answered, after the call), earnings and the dashboard
at 1440 and 390 px, in Russian and English, for people to look at: ``./run screenshots
[DIR]`` (default ``screenshots/``). Skipped in the normal test run."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callpop.server.keys import DB
from callpop.store.employees import save_employee
from callpop.store.models import Agreement, Call, CallParticipant, Contact, Note, Plan, Promise
from tests.support.browser import PASSWORD, Live, open_header_menu

Desk = Callable[..., Awaitable[Any]]
TARGET = os.environ.get("CALLPOP_SCREENSHOTS", "")
WIDTHS = {"1440": {"width": 1440, "height": 900}, "390": {"width": 390, "height": 844}}
CARD = "#calls article[data-call='{call}']"

pytestmark = pytest.mark.skipif(not TARGET, reason="set CALLPOP_SCREENSHOTS=DIR (./run screenshots)")


async def _history(live: Live) -> None:
    """A month that gives the pages something to show."""
    zone = ZoneInfo("Europe/Moscow")
    month = dt.datetime.now(zone).date().replace(day=1)
    start = dt.datetime.combine(month, dt.time(9), zone).astimezone(dt.UTC)
    now = dt.datetime.now(dt.UTC)
    async with live.app[DB].sessions() as s:
        await save_employee(s, "sue", name="Светлана Руководитель", role="supervisor", password=PASSWORD,
                            extensions=[])
        for emp, target in ((live.anna_id, 12), (live.boris_id, 20)):
            s.add(Plan(employee_id=emp, month=month, kpi="contacts", target=Decimal(target)))
            s.add(Plan(employee_id=emp, month=month, kpi="win_rate", target=Decimal(40)))
        for i in range(14):
            emp = live.anna_id if i % 2 else live.boris_id
            when = start + (now - start) * (i + 1) / 16
            call = Call(pbx_id="main", call_key=f"shot-{i}", direction="inbound", client_id=live.client_id,
                        started_at=when, answered_at=when, outcome="answered" if i % 5 else "missed",
                        talk_seconds=95 + i * 7 if i % 5 else 0)
            s.add(call)
            await s.flush()
            s.add(CallParticipant(call_id=call.id, extension="101" if emp == live.anna_id else "102",
                                  employee_id=emp, answered=bool(i % 5), talk_seconds=call.talk_seconds))
            if i % 5:
                s.add(Contact(call_id=call.id, employee_id=emp, client_id=live.client_id, direction="inbound",
                              started_at=when, talk_seconds=call.talk_seconds, counted=True))
        s.add_all([
            Agreement(client_id=live.client_id, title="Кровельные материалы, 2-й квартал", amount=Decimal("84500.50"),
                      made_by_id=live.anna_id),
            Agreement(client_id=live.client_id, title="Поставка бетона", amount=Decimal("12000"), status="won",
                      made_by_id=live.boris_id, closed_at=now),
            Promise(client_id=live.client_id, text="Прислать образцы плитки и прайс на июнь", made_by_id=live.anna_id,
                    due_at=now + dt.timedelta(days=2)),
            Note(client_id=live.client_id, author_id=live.boris_id, text=(
                "Главный инженер просит согласовывать сроки заранее: объект в центре города, разгрузка только "
                "ночью, пропуск на машину оформляется за двое суток. Бухгалтерия принимает документы только "
                "в оригинале, сканы не подходят. ") * 2),
        ])
        await s.commit()


async def _shoot(page: Any, folder: Path, name: str) -> None:
    """The whole page at each width: the viewport is made as tall as the page (a full-page
    capture of a page with a scrollbar crops it off the layout's right edge)."""
    for width, size in WIDTHS.items():
        await page.set_viewport_size(size)
        await page.wait_for_timeout(150)
        height = await page.evaluate("document.documentElement.scrollHeight")
        await page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
        await page.wait_for_timeout(100)
        await page.screenshot(path=str(folder / f"{name}-{width}.png"))
        await page.set_viewport_size(size)


async def _language(page: Any, lang: str) -> None:
    await open_header_menu(page)
    await page.locator(f"form.language button[value={lang}]").click()
    await page.wait_for_selector(f"html[lang={lang}]")
    await page.wait_for_selector("#connection-state[data-state=Connected]", state="attached")


@pytest.fixture
def folder() -> Path:
    path = Path(TARGET).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _count(folder: Path) -> int:
    return len(list(folder.glob("*.png")))


async def test_screenshots(open_desk: Desk, live: Live, folder: Path) -> None:
    await _history(live)
    live.pbx.speed = 0.25  # rings 4 s, talks 8 s: time for the pictures
    anna = await open_desk("anna")
    sue = await open_desk("sue")
    for lang in ("ru", "en"):
        await _language(anna, lang)
        call = await live.pbx.place_call("incoming_answered", client="+79161234567", agent="101")
        card = CARD.format(call=call)
        await anna.wait_for_selector(card + ".state-ringing")
        await _shoot(anna, folder, f"{lang}-desk-ringing")
        await anna.wait_for_selector(card + ".state-active", timeout=15000)
        await _shoot(anna, folder, f"{lang}-desk-answered")
        if lang == "ru":  # dark mode follows the system
            await anna.emulate_media(color_scheme="dark")
            await _shoot(anna, folder, "ru-dark-desk-answered")
            await anna.emulate_media(color_scheme="light")
        await anna.wait_for_selector(card + ".state-after form.record-form", timeout=20000)
        await anna.locator(card + " textarea[name=promise_text]").fill("Выслать договор до пятницы")
        await _shoot(anna, folder, f"{lang}-desk-after-call")
        unknown = await live.pbx.place_call("incoming_noanswer", client="+79035550404", agent="101",
                                            caller_name="MEGAFON")
        # the after-call form is being typed into: the new call waits in the strip
        await anna.wait_for_selector(f"#call-strip article[data-call='{unknown}']")
        await _shoot(anna, folder, f"{lang}-desk-second-call-in-strip")
        await anna.locator(card + " button.close").click()
        await anna.wait_for_selector(CARD.format(call=unknown) + " form.create-client")
        await _shoot(anna, folder, f"{lang}-desk-unknown-caller")
        await anna.goto(f"{live.url}/earnings")
        await anna.wait_for_selector("#earnings-table")
        await _shoot(anna, folder, f"{lang}-earnings")
        await anna.goto(live.url + "/")
        await sue.goto(live.url + "/")
        await _language(sue, lang)
        await sue.goto(f"{live.url}/dashboard")
        await sue.wait_for_selector("#kpi-table")
        await _shoot(sue, folder, f"{lang}-dashboard")
        if lang == "ru":
            await sue.emulate_media(color_scheme="dark")
            await _shoot(sue, folder, "ru-dark-dashboard")
            await sue.emulate_media(color_scheme="light")
        await sue.goto(f"{live.url}/dashboard/drill?employee=all&kpi=contacts")
        await sue.wait_for_selector("#drill")
        await _shoot(sue, folder, f"{lang}-drill")
    assert _count(folder) >= 36
