"""Every page on a phone (390 px wide) in Russian, the longer language: nothing is wider
than the screen, and the words are the right ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.browser import Live, open_header_menu

Desk = Callable[..., Awaitable[Any]]
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


async def _russian(page: Any) -> None:
    await open_header_menu(page)
    await page.locator("form.language button[value=ru]").click()
    await page.wait_for_selector("html[lang=ru]")


async def _fits(page: Any, url: str, ready: str) -> None:
    await page.goto(url)
    await page.wait_for_selector(ready)
    assert await page.evaluate(OVERFLOW) <= 0, f"{url} is wider than the phone"


async def test_no_page_is_wider_than_a_phone(open_desk: Desk, live: Live) -> None:
    anna = await open_desk("anna")
    await anna.set_viewport_size(PHONE)
    await _russian(anna)
    assert await anna.locator("#ring-sound").is_checked()  # a manager hears the phone ring by default
    call = await live.call("incoming_noanswer", "101", client="+79995550303",
                           caller_name="Очень-длинное-имя-абонента-без-пробелов-от-оператора-связи")
    await anna.wait_for_selector(f"#calls article[data-call='{call}'] form.create-client")
    assert await anna.evaluate(OVERFLOW) <= 0, "the desk with a ringing card is wider than the phone"
    assert await anna.locator("header.top").evaluate("el => el.scrollWidth <= el.clientWidth")
    # the header finds a client by a number written any way
    await anna.locator("#find-q").fill("8 (916) 123-45-67")
    hit = anna.locator("#find-results a", has_text="Иван Петров")
    await hit.wait_for(timeout=5000)
    assert await anna.evaluate(OVERFLOW) <= 0
    await _fits(anna, f"{live.url}/promises", "#due-promises li")
    await _fits(anna, f"{live.url}/clients/{live.client_id}", "#client-card .client")
    # a deal in progress is "в работе"; "открыто" is how a promise is open
    badge = anna.locator("#client-card li.agreement .badge")
    assert await badge.text_content() == "в работе"
    await _fits(anna, f"{live.url}/earnings", "#earnings-table")
    await _fits(anna, f"{live.url}/dashboard/drill?employee={live.anna_id}&kpi=contacts", "#drill")
    await _fits(anna, f"{live.url}/clients/999999", "main")
    vera = await open_desk("vera")
    await vera.set_viewport_size(PHONE)
    await _russian(vera)
    assert not await vera.locator("#ring-sound").is_checked()  # a supervisor watching every call does not
    await _fits(vera, f"{live.url}/dashboard", "#kpi-table")
    await _fits(vera, f"{live.url}/dashboard/drill?employee=all&kpi=missed", "#drill")
    await vera.context.clear_cookies()
    await _fits(vera, f"{live.url}/login", "form.login")
    assert anna.dialogs == [] and vera.dialogs == []


async def test_phone_header_is_one_row_with_the_rest_behind_menu(open_desk: Desk) -> None:
    anna = await open_desk("anna")
    await anna.set_viewport_size(PHONE)
    header, brand = anna.locator("header.top"), anna.locator("header.top .brand")
    log_out = anna.locator("header.top form[action='/logout'] button")
    summary = anna.locator("header.top details.menu > summary")
    line = float(await brand.evaluate("el => parseFloat(getComputedStyle(el).lineHeight)"))
    box = await header.bounding_box()
    assert box is not None and box["height"] < 2 * line, "the phone header is more than one row"
    # the brand, the search and the toggle share that row; log out waits behind the toggle
    assert await anna.locator("#find-q").is_visible() and await summary.is_visible()
    assert not await log_out.is_visible()
    await summary.click()
    await log_out.wait_for(state="visible")
    assert await anna.locator("#connection-state").is_visible()
    # the opened menu drops over the page: the header row itself does not grow
    opened = await header.bounding_box()
    assert opened is not None and opened["height"] == box["height"]
    await summary.click()
    await log_out.wait_for(state="hidden")
    # a wide screen shows the header's items without a toggle
    await anna.set_viewport_size(WIDE)
    await log_out.wait_for(state="visible")
    assert not await summary.is_visible()
    assert await anna.locator("header.top nav a[href='/promises']").is_visible()
    assert anna.dialogs == []


async def _language(page: Any, lang: str) -> None:
    await open_header_menu(page)
    await page.locator(f"form.language button[value={lang}]").click()
    await page.wait_for_selector(f"html[lang={lang}]")


async def test_no_page_overflows_in_either_language_at_either_width(open_desk: Desk, live: Live) -> None:
    """Russian and English, phone and desktop: every page of a manager and a supervisor fits
    its width (one page load per page, language and width; the viewport changes in place)."""
    anna = await open_desk("anna")
    vera = await open_desk("vera")
    pages = [(anna, "/", "#no-calls"), (anna, "/promises", "#due-promises li"),
             (anna, f"/clients/{live.client_id}", "#client-card .client"), (anna, "/earnings", "#earnings-table"),
             (anna, f"/dashboard/drill?employee={live.anna_id}&kpi=contacts", "#drill"),
             (vera, "/dashboard", "#kpi-table"),
             (vera, "/dashboard?period=custom&from=2026-03-01&to=2026-03-31", "#kpi-table"),
             (vera, "/dashboard/drill?employee=all&kpi=missed", "#drill")]
    wide: list[str] = []
    for lang in ("ru", "en"):
        for page in (anna, vera):
            await page.set_viewport_size(WIDE)
            await _language(page, lang)
        for page, path, ready in pages:
            await page.goto(live.url + path)
            await page.wait_for_selector(ready, state="attached")
            for name, size in (("390", PHONE), ("1440", WIDE)):
                await page.set_viewport_size(size)
                if await page.evaluate(OVERFLOW) > 0:
                    wide.append(f"{lang} {name} px {path}")
    assert wide == []
