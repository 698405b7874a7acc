"""The manager's desk in headless Chromium against the real application and the simulated
PBX: what a manager sees when the phone rings, while it is answered elsewhere, after the
call, with a hostile caller name, and when the websocket drops."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from callpop.server.keys import DB
from callpop.store.models import Promise
from tests.support.browser import Live

CARD = "#calls article[data-call='{call}']"
Desk = Callable[[str], Awaitable[Any]]
SCREENSHOT = os.environ.get("CALLPOP_SCREENSHOT", "")


async def test_ringing_shows_the_card_with_everyones_history(open_desk: Desk, live: Live) -> None:
    page = await open_desk("anna")
    call = await live.call("incoming_noanswer", "101")
    card = page.locator(CARD.format(call=call))
    await card.wait_for(timeout=5000)
    assert await card.locator(".call-title").text_content() == "Иван Петров"
    assert await card.locator(".call-number").text_content() == "+7 916 123-45-67"
    text = await card.text_content() or ""
    assert "ООО Ромашка" in text and "Responsible: Борис Орлов" in text
    overdue = card.locator("li.promise.overdue")
    assert await overdue.count() == 1
    assert "Выслать счёт на поставку" in (await overdue.text_content() or "")
    assert "promised by Борис Орлов" in (await overdue.text_content() or "")  # a colleague's promise
    assert "Поставка кирпича" in text and "Предпочитает звонки после обеда" in text
    assert await card.get_attribute("class") == "call-card state-ringing"
    if SCREENSHOT:  # to look at the desk as a manager would: CALLPOP_SCREENSHOT=desk.png
        await page.screenshot(path=SCREENSHOT, full_page=True)


async def test_answered_by_a_colleague_greys_the_card_then_dismisses_it(open_desk: Desk, live: Live) -> None:
    page = await open_desk("anna")
    call = await live.call("ring_group", ["102", "101", "103"])  # 102 (boris) answers
    card = page.locator(CARD.format(call=call))
    await card.wait_for(timeout=5000)
    await page.wait_for_selector(CARD.format(call=call) + ".state-gone", timeout=8000)
    assert await card.locator(".call-status").text_content() == "Answered by a colleague"
    await card.wait_for(state="detached", timeout=8000)


async def test_promise_noted_after_the_call_is_on_the_next_call(open_desk: Desk, live: Live) -> None:
    anna = await open_desk("anna")
    call = await live.call("incoming_answered", "101")
    form = anna.locator(CARD.format(call=call) + ".state-after form.record-form")
    await form.wait_for(timeout=8000)
    await form.locator("textarea[name=promise_text]").fill("Перезвонить с ценами <b>во вторник</b>")
    await form.locator("input[name=promise_due]").fill("2030-03-05T15:00")
    await form.locator("textarea[name=note_text]").fill("Просит скидку")
    await form.locator("button[type=submit]").click()
    await form.locator(".saved").wait_for(timeout=5000)
    async with live.app[DB].sessions() as session:
        saved = (await session.execute(select(Promise).where(Promise.text.like("Перезвонить%")))).scalar_one()
    assert saved.call_id is not None and saved.made_by_id == live.anna_id  # linked to the call just ended
    # the next call of this client, to a colleague: the promise is on boris's card
    boris = await open_desk("boris")
    call2 = await live.call("incoming_noanswer", "102")
    card = boris.locator(CARD.format(call=call2))
    await card.wait_for(timeout=5000)
    promise = card.locator("li.promise", has_text="Перезвонить с ценами")
    await promise.wait_for(timeout=5000)
    assert "<b>во вторник</b>" in (await promise.locator(".promise-text").text_content() or "")
    assert "promised by Анна Смирнова" in (await promise.text_content() or "")
    assert "Просит скидку" in (await card.text_content() or "")


async def test_hostile_caller_name_is_shown_as_text(open_desk: Desk, live: Live) -> None:
    page = await open_desk("anna")
    hostile = "<img src=x onerror=alert(1)>"
    call = await live.call("incoming_noanswer", "101", client="+79995550000", caller_name=hostile)
    card = page.locator(CARD.format(call=call))
    await card.wait_for(timeout=5000)
    assert await card.locator(".call-title").text_content() == "+7 999 555-00-00"  # a number, not a name
    assert await card.locator(".caller-name").text_content() == f"Caller ID: {hostile}"
    assert await card.locator("img").count() == 0
    assert await card.locator("input[name=name]").input_value() == ""  # not taken for the client's name
    await card.locator("button.use-caller-name").click()  # offered with a click, as text
    assert await card.locator("input[name=name]").input_value() == hostile
    await asyncio.sleep(0.5)
    assert page.dialogs == []


async def test_manager_b_never_sees_manager_as_pop(open_desk: Desk, live: Live) -> None:
    anna = await open_desk("anna")
    boris = await open_desk("boris")
    call = await live.call("incoming_noanswer", "101")
    await anna.locator(CARD.format(call=call)).wait_for(timeout=5000)
    await asyncio.sleep(1.0)  # time enough for a wrong message to arrive
    assert await boris.locator("#calls article").count() == 0
    assert await boris.locator("#no-calls").is_visible()


async def test_after_the_socket_drops_the_ringing_card_is_back(open_desk: Desk, live: Live) -> None:
    page = await open_desk("anna")
    call = await live.call("incoming_noanswer", "101")
    card = page.locator(CARD.format(call=call))
    await card.wait_for(timeout=5000)
    # lose the socket and everything the tab knew: only the server's snapshot can bring it back
    await page.evaluate("""() => {
        const desk = window.callpopDesk;
        for (const call of [...desk.calls.keys()]) desk.calls.get(call).node.remove(), desk.calls.delete(call);
        desk.socket.close();
    }""")
    await page.wait_for_selector("#connection-state[data-state=Disconnected]", timeout=3000)
    await page.wait_for_selector("#connection-state[data-state=Connected]", timeout=5000)
    await card.wait_for(timeout=5000)
    assert await card.locator(".call-title").text_content() == "Иван Петров"
    assert await card.get_attribute("class") == "call-card state-ringing"


async def test_unknown_caller_becomes_a_client_from_the_card(open_desk: Desk, live: Live) -> None:
    page = await open_desk("anna")
    call = await live.call("incoming_noanswer", "101", client="+79035550202", caller_name="Ольга Белова")
    card = page.locator(CARD.format(call=call))
    await card.wait_for(timeout=5000)
    offer = card.locator("form.create-client")
    assert await offer.locator("input[name=phone]").input_value() == "+79035550202"
    await offer.locator("button.use-caller-name").click()
    await offer.locator("input[name=company]").fill("ИП Белова")
    await offer.locator("button[type=submit]").click()
    await card.locator(".client-link").wait_for(timeout=5000)  # the card now shows the new client
    assert await card.locator(".call-title").text_content() == "Ольга Белова"
    assert "ИП Белова" in (await card.locator(".call-head").text_content() or "")
    # the same number calling again is now known
    call2 = await live.call("incoming_noanswer", "101", client="8 903 555-02-02")
    card2 = page.locator(CARD.format(call=call2))
    await card2.locator(".client-link").wait_for(timeout=5000)
    assert await card2.locator(".call-title").text_content() == "Ольга Белова"


async def test_click_to_call_from_the_client_page_rings_my_phone(open_desk: Desk, live: Live) -> None:
    desk = await open_desk("anna")
    client_page = await desk.context.new_page()
    await client_page.goto(f"{live.url}/clients/{live.client_id}")
    await client_page.locator("button.call-button").first.click()
    await client_page.wait_for_selector("#dial-status:not([hidden])")
    assert "Calling +7 916 123-45-67" in (await client_page.locator("#dial-status").text_content() or "")
    outgoing = desk.locator("#calls article", has=desk.locator(".call-title", has_text="Иван Петров"))
    await outgoing.wait_for(timeout=8000)  # Asterisk rang anna's own phone: the pop shows the client


async def test_unknown_number_is_attached_to_a_client_found_by_search(open_desk: Desk, live: Live) -> None:
    page = await open_desk("anna")
    call = await live.call("incoming_noanswer", "101", client="+74951234567")
    card = page.locator(CARD.format(call=call))
    attach = card.locator("form.attach-number")
    await attach.wait_for(timeout=5000)
    await attach.locator("input[name=q]").fill("петров иван")  # any case, any order finds "Иван Петров"
    await attach.locator("button[type=submit]").click()
    hit = attach.locator(".search-results li", has_text="Иван Петров")
    await hit.locator("button").click()
    await card.locator(".client-link").wait_for(timeout=5000)
    assert await card.locator(".call-title").text_content() == "Иван Петров"
    assert "+7 495 123-45-67" in (await card.locator(".phones").text_content() or "")
