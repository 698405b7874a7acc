"""More of the desk in Chromium: notifications in a hidden tab, the promises page, a
supervisor watching every call read-only, and a client's past calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from callpop.server.keys import DB
from callpop.store.models import Call, Client, ClientPhone, Promise
from tests.support.browser import KNOWN_NUMBER, Live, wait_for_js

Desk = Callable[..., Awaitable[Any]]
CARD = "#calls article[data-call='{call}']"

# The page cannot be hidden in headless Chromium, and a real notification cannot be
# clicked: stub document.hidden and Notification, and record what the desk does with them.
NOTIFICATION_STUB = """
Object.defineProperty(Document.prototype, "hidden", { get: () => window.__hidden === true, configurable: true });
window.__notes = [];
window.__asked = 0;
window.Notification = class {
  constructor(title, options) { this.title = title; this.body = options.body; window.__notes.push(this); }
  close() { this.closed = true; }
  static requestPermission() {
    window.__asked += 1;
    window.Notification.permission = "granted";
    return Promise.resolve("granted");
  }
};
window.Notification.permission = "default";
"""


async def test_hidden_tab_gets_a_notification_that_focuses_the_card(open_desk: Desk, live: Live) -> None:
    page = await open_desk("anna", NOTIFICATION_STUB)
    button = page.locator("#enable-notifications")
    assert await button.is_visible()
    await button.click()  # the permission is asked on a click, once
    await button.wait_for(state="hidden")
    assert await page.evaluate("window.__asked") == 1
    await page.evaluate("window.__hidden = true")
    call = await live.call("incoming_noanswer", "101", client="+79990001122", caller_name="<b>Ночной</b> звонок")
    await wait_for_js(page, "window.__notes.length === 1")
    note = await page.evaluate("({title: window.__notes[0].title, body: window.__notes[0].body})")
    assert note == {"title": "Incoming call", "body": "+7 999 000-11-22 (<b>Ночной</b> звонок)"}
    await page.evaluate("window.__notes[0].onclick()")
    card = page.locator(CARD.format(call=call))
    assert "flash" in (await card.get_attribute("class") or "")
    # a visible tab is not notified
    await page.evaluate("window.__hidden = false")
    call2 = await live.call("incoming_noanswer", "101")
    await page.locator(CARD.format(call=call2)).wait_for(timeout=5000)
    assert await page.evaluate("window.__notes.length") == 1


async def test_promises_page_marks_a_due_promise_kept(open_desk: Desk, live: Live) -> None:
    async with live.app[DB].sessions() as session:
        promise = (await session.execute(select(Promise))).scalar_one()  # boris's overdue promise
    boris = await open_desk("boris")
    await boris.goto(live.url + "/promises")
    item = boris.locator(f"#due-promises li[data-promise='{promise.id}']")
    await item.wait_for(timeout=5000)
    assert "Иван Петров" in (await item.locator(".client-name").text_content() or "")
    assert "overdue" in (await item.get_attribute("class") or "")
    count = boris.locator("#due-promises .count")
    assert await count.text_content() == "1"
    # filtered: it is overdue, not upcoming
    await boris.locator("#due-promises button.filter[data-filter=upcoming]").click()
    await item.wait_for(state="detached", timeout=5000)
    await boris.locator("#due-promises button.filter[data-filter=overdue]").click()
    await item.wait_for(timeout=5000)
    assert await count.text_content() == "1"
    await item.locator("button", has_text="Kept").click()
    await wait_for_js(boris, "document.querySelector('#due-promises .count').textContent === '0'")  # no reload
    async with live.app[DB].sessions() as session:
        stored = await session.get(Promise, promise.id)
        assert stored is not None and (stored.status, stored.closed_by_id) == ("kept", live.boris_id)


async def test_supervisor_watching_all_sees_a_managers_call_without_a_form(open_desk: Desk, live: Live) -> None:
    vera = await open_desk("vera")
    watch = vera.locator("#watch-all")
    await watch.check()
    await asyncio.sleep(0.3)  # the subscription reaches the server
    live.pbx.speed = 0.7  # a 3 s conversation: time to look at the board
    call = await live.call("incoming_answered", "101")
    card = vera.locator(CARD.format(call=call))
    await card.wait_for(timeout=5000)
    assert await card.locator(".call-title").text_content() == "Иван Петров"
    await vera.wait_for_selector(CARD.format(call=call) + ".state-active", timeout=5000)
    assert await card.locator("form.record-form").count() == 0  # read-only: the form is anna's
    # whose call it is, on the card and on the board of who is on the phone
    assert await card.locator(".agent-name").text_content() == "with Анна Смирнова"
    board = vera.locator("#live-board li", has_text="Анна Смирнова")
    assert "talking" in (await board.text_content() or "")
    await card.wait_for(state="detached", timeout=10000)  # ended: greyed, then dismissed


async def test_transferred_call_appears_for_the_colleague_with_the_same_history(open_desk: Desk, live: Live) -> None:
    anna = await open_desk("anna")
    boris = await open_desk("boris")
    call = await live.call("blind_transfer", ["101", "102"])  # anna answers, then transfers to boris
    await anna.locator(CARD.format(call=call)).wait_for(timeout=5000)
    card = boris.locator(CARD.format(call=call))
    await boris.wait_for_selector(CARD.format(call=call) + ".state-active", timeout=8000)
    assert await card.locator(".call-title").text_content() == "Иван Петров"
    assert "Выслать счёт на поставку" in (await card.locator("li.promise").first.text_content() or "")
    assert await card.locator("form.record-form").count() == 1  # boris talks now: he may record
    await anna.wait_for_selector(CARD.format(call=call) + ".state-gone", timeout=5000)


async def test_several_clients_with_the_number_offer_a_choice(open_desk: Desk, live: Live) -> None:
    async with live.app[DB].sessions() as session:
        session.add(Client(name="Мария Петрова", company="ООО Ромашка",
                           phones=[ClientPhone(raw="+7 916 123-45-67", e164="+79161234567", tail10="9161234567")]))
        await session.commit()
    page = await open_desk("anna")
    call = await live.call("incoming_noanswer", "101")
    card = page.locator(CARD.format(call=call))
    choices = card.locator(".candidates li")
    await choices.first.wait_for(timeout=5000)
    assert sorted(await choices.locator(".client-name").all_text_contents()) == ["Иван Петров", "Мария Петрова"]
    await choices.filter(has_text="Мария Петрова").locator("button").click()
    await card.locator(".client-link").wait_for(timeout=5000)
    assert await card.locator(".call-title").text_content() == "Мария Петрова"


async def test_every_page_works_under_the_content_security_policy(open_desk: Desk, live: Live) -> None:
    """The login form, desk, promises, a client, the dashboard and earnings load their scripts
    and styles with nothing refused; markup that slipped through escaping would still not run."""
    page = await open_desk("vera", form=True)  # typed in the login form, as a person logs in
    for path in ("/promises", f"/clients/{live.client_id}", "/dashboard", "/earnings", "/"):
        response = await page.goto(live.url + path)
        assert response is not None and response.status == 200, path
        assert "frame-ancestors 'none'" in (await response.all_headers())["content-security-policy"]
        rules = await page.evaluate("[...document.styleSheets].reduce((n, s) => n + s.cssRules.length, 0)")
        assert rules > 10, path  # desk.css applied
    ran = await page.evaluate("""() => new Promise(done => {
        window.__injected = false;
        const img = document.createElement('img');
        img.setAttribute('onerror', 'window.__injected = true');
        img.src = '/no-such-image';
        document.body.appendChild(img);
        const s = document.createElement('script');
        s.textContent = 'window.__injected = true';
        document.body.appendChild(s);
        setTimeout(() => done(window.__injected), 300);
    })""")
    assert ran is False
    page.csp_violations.clear()  # those two refusals were the point of the check


async def test_a_clients_calls_say_what_is_not_known(open_desk: Desk, live: Live) -> None:
    """A call whose answer callpop did not see (it learned the call from the PBX's channel
    list after a restart) or whose end it did not see (closed by a sweep after a kill)
    shows its talk as the least it can have been, as the desk does; a call whose end and
    answer were not seen says its outcome is unknown, not "in progress"."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def row(key: str, minutes_ago: int, **values: Any) -> Call:
        start = now - dt.timedelta(minutes=minutes_ago)
        return Call(pbx_id="main", call_key=key, direction="inbound", client_number=KNOWN_NUMBER,
                    client_id=live.client_id, started_at=start, ended_at=start + dt.timedelta(seconds=60), **values)

    async with live.app[DB].sessions() as session:
        session.add_all([
            row("seen", 30, answered_at=now - dt.timedelta(minutes=30), outcome="answered", talk_seconds=42),
            row("answer-unseen", 20, answered_at=now - dt.timedelta(minutes=20), outcome="answered",
                talk_seconds=4, answer_unseen=True),
            row("end-unseen", 10, outcome="unknown", talk_seconds=0, end_unseen=True),
            row("answered-end-unseen", 5, answered_at=now - dt.timedelta(minutes=5), outcome="answered",
                talk_seconds=2, end_unseen=True),
        ])
        await session.commit()
    page = await open_desk("anna")
    await page.goto(f"{live.url}/clients/{live.client_id}")
    items = page.locator("li.call .meta")
    await items.nth(3).wait_for(timeout=5000)
    assert await items.all_text_contents() == [
        "incoming · talk ≥ 0:02, end time unknown",
        "incoming · outcome unknown",
        "incoming · talk ≥ 0:04, answer time unknown",
        "incoming · talked 0:42",
    ]


async def test_a_call_learned_from_a_listing_ends_with_its_talk_shown_as_the_least_it_can_have_been(
        open_desk: Desk, live: Live) -> None:
    """callpop (re)started while Иван talked to anna: the PBX's channel list shows the call
    answered, not when. When it ends, anna's card says the talk callpop is sure of and that
    the answer time is unknown, not a plain talk time."""
    from callpop.pipeline import PIPELINE
    from callpop.telephony.tracker import CallTracker
    from tests.support.captures import CONFIG

    page = await open_desk("anna")
    listed_at = time.time()

    def channel(uid: str, name: str, number: str, age: int) -> dict[str, str]:
        return {"Event": "CoreShowChannel", "Channel": name, "Uniqueid": uid, "Linkedid": "1800000090.1",
                "ChannelState": "6", "ChannelStateDesc": "Up", "CallerIDNum": number, "CallerIDName": "",
                "Exten": "101", "Context": "from-trunk", "BridgeId": "bridge-1", "Duration": f"00:00:{age:02d}"}

    tracker = CallTracker(CONFIG)  # the events a daemon's tracker makes of that listing
    events = tracker.resync([channel("1800000090.1", "PJSIP/trunk-00000001", KNOWN_NUMBER, 10),
                             channel("1800000091.2", "PJSIP/101-00000002", "101", 8)], now=listed_at)
    events += tracker.resync([], now=listed_at + 4.3)  # gone from the next listing: ended
    await live.app[PIPELINE].handle(events)
    card = page.locator(CARD.format(call="1800000090.1"))
    talk = card.locator(".call-talk")
    await talk.wait_for(timeout=8000)
    assert await talk.text_content() == "talk ≥ 0:04, answer time unknown"
    assert "Иван Петров" in (await card.locator(".call-head").text_content() or "")


async def test_a_call_whose_end_was_not_seen_ends_with_its_talk_shown_as_the_least_it_can_have_been(
        open_desk: Desk, live: Live) -> None:
    """anna's call was answered live, then the PBX link was lost and the call was gone from
    the next listing: her card says the talk callpop is sure of and that the end time is
    unknown, in the client's calls list's words."""
    from callpop.pipeline import PIPELINE
    from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing

    page = await open_desk("anna")
    began = time.time()
    call = "1800000190.1"
    await live.app[PIPELINE].handle([
        Ringing(call, "inbound", KNOWN_NUMBER, "101", at=began),
        Answered(call, "101", at=began + 2),
        Ended(call, "inbound", KNOWN_NUMBER, "answered", ("101",), 6, started_at=began, ended_at=began + 8,
              talks=(AgentTalk("101", 6, 30),), answered_at=began + 2, end_unseen=True)])
    talk = page.locator(CARD.format(call=call)).locator(".call-talk")
    await talk.wait_for(timeout=8000)
    assert await talk.text_content() == "talk ≥ 0:06, end time unknown"
