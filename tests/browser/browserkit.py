"""Helpers of the browser tests: the running app's handle, seed data and logging in."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from callpop.accounts import hash_password
from callpop.store.db import Database
from callpop.store.models import Agreement, Client, ClientPhone, Employee, Extension, Note, Promise

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


async def seed(db: Database) -> tuple[int, int, int]:
    now = dt.datetime.now(dt.UTC)
    async with db.sessions() as s:
        anna = Employee(name="Анна Смирнова", login="anna", password_hash=PASSWORD_HASH, role="manager")
        boris = Employee(name="Борис Орлов", login="boris", password_hash=PASSWORD_HASH, role="manager")
        vera = Employee(name="Вера Начальник", login="vera", password_hash=PASSWORD_HASH, role="supervisor")
        s.add_all([anna, boris, vera])
        await s.flush()
        s.add_all([Extension(extension="101", employee_id=anna.id), Extension(extension="102", employee_id=boris.id)])
        client = Client(name="Иван Петров", company="ООО Ромашка", responsible_id=boris.id, status="regular",
                        status_source="manual")
        client.phones = [ClientPhone(raw="8 (916) 123-45-67", e164=KNOWN_NUMBER, tail10="9161234567")]
        s.add(client)
        await s.flush()
        s.add_all([
            Promise(client_id=client.id, text="Выслать счёт на поставку", made_by_id=boris.id,
                    due_at=now - dt.timedelta(days=2)),
            Agreement(client_id=client.id, title="Поставка кирпича", amount=Decimal("150000"), made_by_id=boris.id),
            Note(client_id=client.id, text="Предпочитает звонки после обеда", author_id=anna.id),
        ])
        await s.commit()
        return anna.id, boris.id, client.id


async def login(browser: Any, live: Live, who: str, init_script: str | None = None) -> Any:
    """A fresh context (own cookies) logged in as *who*; returns the desk page.
    ``init_script`` runs in every page before the page's own scripts (stubs)."""
    context = await browser.new_context(locale="en-GB", timezone_id="Europe/Moscow")
    if init_script:
        await context.add_init_script(init_script)
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    page.dialogs = dialogs  # scripts must never raise one (an XSS would)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.csp_violations = violations  # the pages must work under the policy, nothing refused
    await page.goto(live.url + "/login")
    await page.fill("input[name=login]", who)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector("#connection-state[data-state=Connected]")
    return page


async def wait_for_js(page: Any, expression: str, within: float = 5.0) -> None:
    """Poll *expression* until it is true. Playwright's ``wait_for_function`` compiles its
    predicate inside the page, which the Content-Security-Policy (no 'unsafe-eval') refuses;
    ``evaluate`` runs outside the page's policy."""
    deadline = asyncio.get_running_loop().time() + within
    while not await page.evaluate(expression):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {expression}")
        await asyncio.sleep(0.05)
