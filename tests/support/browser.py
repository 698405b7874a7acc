"""What the browser tests share: the running app's handle and the seeded accounts' password."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from callpop.accounts import hash_password

PASSWORD = "secret-pw-1"
PASSWORD_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: once per session
KNOWN_NUMBER = "+79161234567"


@dataclass
class Live:
    """The running application: its URL, the simulated PBX and the seeded data."""

    url: str
    app: web.Application
    pbx: Any
    anna_id: int
    boris_id: int
    client_id: int

    async def call(self, scenario: str, agents: str | list[str], *, client: str = KNOWN_NUMBER,
                   caller_name: str | None = None) -> str:
        result: str = await self.pbx.place_call(scenario, client=client, agent=agents, caller_name=caller_name)
        return result


async def wait_for_js(page: Any, expression: str, within: float = 5.0) -> None:
    """Poll *expression* until it is true. Playwright's ``wait_for_function`` compiles its
    predicate inside the page, which the Content-Security-Policy (no 'unsafe-eval') refuses;
    ``evaluate`` runs outside the page's policy."""
    deadline = asyncio.get_running_loop().time() + within
    while not await page.evaluate(expression):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {expression}")
        await asyncio.sleep(0.05)


async def open_header_menu(page: Any) -> None:
    """On a phone the header's items are behind its "Menu" toggle: open it the way a user
    does (a wide screen shows them all, nothing to open)."""
    summary = page.locator("header.top details.menu > summary")
    if await summary.is_visible() and not await page.locator("header.top details.menu").evaluate("d => d.open"):
        await summary.click()
