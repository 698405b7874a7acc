"""What a manager does from the desk's side panels and the dashboard's period picker, in
Chromium: reschedule a promise (typed in their own date format), call back a missed call
and mark it done, hear the ring (or not, as a supervisor), pick a period."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from callpop.server.keys import DB
from callpop.store.models import Call, CallParticipant, Employee, Extension, Promise, utcnow
from tests.support.browser import Live, wait_for_js

Desk = Callable[..., Awaitable[Any]]
CARD = "#calls article[data-call='{call}']"

# every tone the desk's ring plays goes through OscillatorNode.start: count them
TONE_SPY = """
window.__tones = 0;
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__tones += 1; return start.apply(this, args); };
"""


async def _speaks_russian(live: Live, *logins: str) -> None:
    async with live.app[DB].sessions() as s:
        await s.execute(update(Employee).where(Employee.login.in_(logins)).values(language="ru"))
        await s.commit()


async def test_a_promise_is_rescheduled_in_the_users_date_format(open_desk: Desk, live: Live) -> None:
    await _speaks_russian(live, "boris")
    async with live.app[DB].sessions() as s:
        promise = (await s.execute(select(Promise))).scalar_one()  # boris's, overdue since two days
    boris = await open_desk("boris")
    await boris.goto(live.url + "/promises")
    item = boris.locator(f"#due-promises li[data-promise='{promise.id}']")
    await item.wait_for(timeout=5000)
    count = boris.locator("#due-promises .count")
    assert await count.text_content() == "1" and "overdue" in (await item.get_attribute("class") or "")
    await item.locator("button", has_text="Перенести").click()
    field = item.locator("form.reschedule input[name=due_at]")
    # the user's format, not the browser's (the context's locale is en-GB)
    assert await field.get_attribute("placeholder") == "дд.мм.гггг чч:мм"
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} 10:00", await field.input_value())
    await field.fill("31.02.2030 15:00")  # no such day: said before anything is sent
    await item.locator("form.reschedule button[type=submit]").click()
    error = item.locator("form.reschedule .error")
    await error.wait_for(state="visible", timeout=3000)
    assert await error.text_content() == "Введите дату и время в виде дд.мм.гггг чч:мм"
    await field.fill("05.03.2030 15:00")
    await item.locator("form.reschedule button[type=submit]").click()
    # no longer due: the counter drops at once, and the promise is among the upcoming ones
    await wait_for_js(boris, "document.querySelector('#due-promises .count').textContent === '0'")
    await item.wait_for(state="detached", timeout=5000)
    await boris.locator("#due-promises button.filter[data-filter=upcoming]").click()
    await item.wait_for(timeout=5000)
    assert await count.text_content() == "1" and "overdue" not in (await item.get_attribute("class") or "")
    meta = (await item.locator(".meta").text_content() or "").replace("\u202f", " ")
    assert meta.startswith("срок 5 мар. 2030 г.") and "15:00" in meta, meta
    async with live.app[DB].sessions() as s:
        stored = await s.get(Promise, promise.id)
        assert stored is not None and stored.status == "open"
        due = stored.due_at if stored.due_at.tzinfo else stored.due_at.replace(tzinfo=dt.UTC)
        assert due.astimezone(ZoneInfo("Europe/Moscow")) == dt.datetime(2030, 3, 5, 15, 0,
                                                                        tzinfo=ZoneInfo("Europe/Moscow"))


async def test_missed_calls_are_called_back_and_done_one_call_at_a_time(open_desk: Desk, live: Live) -> None:
    calls = []
    async with live.app[DB].sessions() as s:  # two queue calls of boris's client, each rang both managers
        for minutes in (30, 10):
            call = Call(pbx_id="main", call_key=f"missed-{minutes}", direction="inbound",
                        client_number="+79161234567", client_id=live.client_id,
                        started_at=utcnow() - dt.timedelta(minutes=minutes), outcome="missed")
            s.add(call)
            await s.flush()
            s.add_all([CallParticipant(call_id=call.id, extension="101", employee_id=live.anna_id),
                       CallParticipant(call_id=call.id, extension="102", employee_id=live.boris_id)])
            calls.append(call.id)
        await s.commit()
    boris = await open_desk("boris")
    items = boris.locator("#missed-calls li.missed-call")
    await items.first.wait_for(timeout=5000)
    assert sorted(await items.evaluate_all("els => els.map(e => Number(e.dataset.call))")) == sorted(calls)
    assert await boris.locator("#missed-calls .count").text_content() == "2"  # two calls, four legs
    # call back: boris's own phone is rung to call the client's number
    first = boris.locator(f"#missed-calls li.missed-call[data-call='{calls[0]}']")
    await first.locator("button.call-button").click()
    await first.locator("button.call-button", has_text="Your phone rings…").wait_for(timeout=5000)  # the PBX took it
    assert len(live.pbx.originates) == 1
    sent = {k.lower(): v for k, v in live.pbx.originates[0].items()}
    assert sent["exten"].endswith("9161234567") and "102" in sent["channel"]
    # done: that call leaves the list, the other call to the same client stays
    await first.locator("button.done").click()
    await first.wait_for(state="detached", timeout=5000)
    assert await items.evaluate_all("els => els.map(e => Number(e.dataset.call))") == [calls[1]]
    assert await boris.locator("#missed-calls .count").text_content() == "1"


async def test_the_ring_sounds_for_a_manager_and_not_for_a_supervisor_until_asked(open_desk: Desk,
                                                                                  live: Live) -> None:
    async with live.app[DB].sessions() as s:  # vera, a supervisor, has a phone too
        vera_id = (await s.execute(select(Employee.id).where(Employee.login == "vera"))).scalar_one()
        s.add(Extension(extension="103", employee_id=vera_id))
        await s.commit()
    anna = await open_desk("anna", TONE_SPY)
    vera = await open_desk("vera", TONE_SPY)
    assert await anna.locator("#ring-sound").is_checked()
    assert not await vera.locator("#ring-sound").is_checked()
    mine = await live.call("incoming_noanswer", "101")
    await anna.locator(CARD.format(call=mine)).wait_for(timeout=5000)
    await wait_for_js(anna, "window.__tones > 0", within=3)
    theirs = await live.call("incoming_noanswer", "103")
    await vera.wait_for_selector(CARD.format(call=theirs) + ".state-ringing", timeout=5000)
    assert await vera.evaluate("window.__tones") == 0  # ringing, silent: the supervisor's default
    await vera.locator("#ring-sound").check()  # asked for: the call still ringing is heard
    await wait_for_js(vera, "window.__tones > 0", within=3)
    assert await vera.evaluate("localStorage.getItem('callpop.ring')") == "on"


async def test_the_dashboard_asks_only_the_dates_the_period_needs_in_the_users_format(open_desk: Desk,
                                                                                        live: Live) -> None:
    await _speaks_russian(live, "vera")
    vera = await open_desk("vera")
    await vera.goto(live.url + "/dashboard?period=month")
    form = vera.locator("#period-form")
    single, start, end = (form.locator(f"input[name={n}]") for n in ("date", "from", "to"))
    assert await single.is_visible() and not await start.is_visible() and not await end.is_visible()
    assert await single.get_attribute("placeholder") == "дд.мм.гггг"
    assert re.fullmatch(r"01\.\d\d\.\d{4}", await single.input_value())
    await form.locator("#period-kind").select_option("custom")
    assert not await single.is_visible() and await start.is_visible() and await end.is_visible()
    await start.fill("01.03.2026")
    await end.fill("05.03.2026")
    await form.locator("button[type=submit]").click()
    await vera.wait_for_url(re.compile(r"period=custom"))
    heading = (await vera.locator("h1").text_content() or "").replace("\u202f", " ")
    assert "1 мар. 2026 г. – 5 мар. 2026 г." in heading
    assert await start.input_value() == "01.03.2026" and await end.input_value() == "05.03.2026"
    assert not await single.is_visible()
    await form.locator("#period-kind").select_option("week")
    assert await single.is_visible() and not await start.is_visible()
    # a date the user cannot have meant: a page saying so in their language and format
    await form.locator("#period-kind").select_option("custom")
    await start.fill("31.02.2026")
    await form.locator("button[type=submit]").click()
    message = vera.locator(".error-page .error")
    await message.wait_for(timeout=5000)
    assert await message.text_content() == "С: введите дату в виде 31.03.2026"
