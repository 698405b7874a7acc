"""The desk while a manager works with it: what is typed survives the call's events, more
calls wait in a strip instead of pushing the form down, errors speak the user's language,
a call still going on is not "missed", and a server that goes away is said to be gone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from callpop.pipeline import PIPELINE
from callpop.server.keys import HUB
from callpop.telephony.events import Ringing
from tests.support.browser import Live, wait_for_js

CARD = "#calls article[data-call='{call}']"
Desk = Callable[..., Awaitable[Any]]


async def test_typing_into_an_unknown_callers_card_survives_the_answer(open_desk: Desk, live: Live) -> None:
    page = await open_desk("anna")
    live.pbx.speed = 0.5  # rings 2 s, talks 4 s: time to type while it rings
    call = await live.pbx.place_call("incoming_answered", client="+79995551234", agent="101",
                                     caller_name="MTS Mobile")
    card = page.locator(CARD.format(call=call))
    await card.locator("form.create-client").wait_for(timeout=5000)
    # the carrier's caller-ID name is not presented as a client's name
    assert await card.locator(".call-title").text_content() == "+7 999 555-12-34"
    assert await card.locator(".caller-name").text_content() == "Caller ID: MTS Mobile"
    await card.locator("input[name=name]").fill("Ольга Белова")
    await card.locator("input[name=company]").fill("ИП Белова")
    await card.locator("input[name=q]").fill("белова")
    top = (await card.bounding_box() or {})["y"]
    # another call while this card is being typed into: it waits in the strip below
    other = await live.call("incoming_noanswer", "101")
    await page.locator(f"#call-strip article.compact[data-call='{other}']").wait_for(timeout=5000)
    await page.wait_for_selector(CARD.format(call=call) + ".state-active", timeout=8000)
    assert await card.locator("input[name=name]").input_value() == "Ольга Белова"
    assert await card.locator("input[name=company]").input_value() == "ИП Белова"
    assert await card.locator("input[name=q]").input_value() == "белова"
    assert (await card.bounding_box() or {})["y"] == top  # nothing pushed it down
    await card.locator("form.create-client button[type=submit]").click()
    form = card.locator("form.record-form")
    await form.wait_for(timeout=8000)
    # a server validation error is said in words, naming the field as the form does
    await form.locator("textarea[name=promise_text]").fill("Перезвонить")
    await form.locator("input[name=promise_due]").fill("9999-03-05T15:00")
    await form.locator("button[type=submit]").click()
    error = form.locator(".error")
    await error.wait_for(state="visible", timeout=5000)
    said = await error.text_content() or ""
    assert said.startswith("Due: the year 9999 is not accepted"), said
    assert "due_at" not in said
    await form.locator("input[name=promise_due]").fill("2030-03-05T15:00")
    assert await error.is_hidden()  # fixing the form clears the stale error
    await form.locator("button[type=submit]").click()
    await form.locator(".saved").wait_for(timeout=5000)
    assert await error.is_hidden()
    assert page.dialogs == []


async def test_a_call_in_progress_is_not_missed_and_the_pop_is_noticed(open_desk: Desk, live: Live) -> None:
    anna = await open_desk("anna")
    boris = await open_desk("boris")
    first = await live.call("incoming_noanswer", "101")
    card = anna.locator(CARD.format(call=first))
    await card.wait_for(timeout=5000)
    # the summary strip comes first
    summary = card.locator(".summary")
    assert await summary.locator(".pill").all_text_contents() == [
        "Regular client", "Overdue promises: 1", "Responsible: Борис Орлов", "Open agreements: 1 · RUB\u00a0150,000.00"]
    # heard and seen: a screen reader announcement and the tab's title
    await wait_for_js(anna, "document.getElementById('announce').textContent.length > 0", within=3)
    assert await anna.locator("#announce").text_content() == "Incoming call: Иван Петров — regular"
    await wait_for_js(anna, "document.title.startsWith('☎')", within=3)
    # the same client calls boris while anna's call still rings: it is "in progress", not missed
    second = await live.call("incoming_noanswer", "102")
    theirs = boris.locator(CARD.format(call=second))
    await theirs.wait_for(timeout=5000)
    recent = theirs.locator("li.call.outcome-unknown")
    assert await recent.count() >= 1
    assert "in progress" in (await recent.first.text_content() or "")
    assert await theirs.locator("li.call.outcome-missed").count() == 0
    # the server goes away (stopped with Ctrl-C): the card no longer claims to ring
    await live.app[HUB].close_all()
    await anna.wait_for_selector(CARD.format(call=first) + ".state-lost", timeout=3000)
    assert "Connection lost" in (await card.locator(".call-status").text_content() or "")
    # and it comes back as it is once the socket is open again
    await anna.wait_for_selector(CARD.format(call=first) + ".state-ringing", timeout=8000)
    await asyncio.sleep(0)
    assert anna.dialogs == [] and boris.dialogs == []


async def test_missed_call_to_return_is_on_the_desk_until_done(open_desk: Desk, live: Live) -> None:
    from callpop.server.keys import DB
    from callpop.store.models import Call, CallParticipant, utcnow

    async with live.app[DB].sessions() as s:  # a queue call to boris's client that rang both managers
        call = Call(pbx_id="main", call_key="missed-1", direction="inbound", client_number="+79161234567",
                    client_id=live.client_id, started_at=utcnow(), outcome="missed")
        s.add(call)
        await s.flush()
        s.add_all([CallParticipant(call_id=call.id, extension="101", employee_id=live.anna_id),
                   CallParticipant(call_id=call.id, extension="102", employee_id=live.boris_id)])
        await s.commit()
    boris = await open_desk("boris")
    item = boris.locator("#missed-calls li.missed-call")
    await item.wait_for(timeout=5000)
    assert await item.count() == 1  # one call, though it rang two phones
    assert "Иван Петров" in (await item.text_content() or "")
    assert await item.locator("button.call-button").count() == 1
    await item.locator("button.done").click()
    await item.wait_for(state="detached", timeout=5000)
    assert await boris.locator("#missed-calls .count").text_content() == "0"


async def test_one_pbx_unreachable_is_named_and_the_other_pbxs_cards_are_left_alone(
        open_desk: Desk, live: Live) -> None:
    anna = await open_desk("anna")
    first = await live.call("incoming_noanswer", "101")  # a call on the first PBX
    # a call on a second PBX ([ami.office2]) at anna's phone, as that PBX's tracker hands it on
    other = "office2:1795000000.9"
    pipeline = live.app[PIPELINE]
    await pipeline.handle([Ringing(other, "inbound", "+79990001122", "101")])
    await anna.locator(CARD.format(call=other)).wait_for(timeout=5000)
    await anna.locator(CARD.format(call=first)).wait_for(timeout=5000)
    pipeline.pbx_lost("office2")
    await anna.locator("#pbx-state").wait_for(state="visible", timeout=3000)
    assert await anna.locator("#pbx-state").text_content() == "PBX office2 unreachable"
    status = anna.locator(CARD.format(call=other) + " .call-status")
    await wait_for_js(anna, f"document.querySelector(\"{CARD.format(call=other)} .call-status\")"
                            ".textContent.startsWith('PBX office2 unreachable')", within=3)
    assert await status.text_content() == "PBX office2 unreachable: the call may have ended"
    # the first PBX's call still rings, as it does
    assert await anna.locator(CARD.format(call=first) + " .call-status").text_content() == "Ringing…"
    assert await anna.locator("#connection-state").get_attribute("data-state") == "Connected"
    pipeline.resynced("office2")
    await anna.locator("#pbx-state").wait_for(state="hidden", timeout=3000)
    await wait_for_js(anna, f"document.querySelector(\"{CARD.format(call=other)} .call-status\")"
                            ".textContent === 'Ringing…'", within=3)
