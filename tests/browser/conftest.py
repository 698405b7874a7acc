"""Browser tests: Debian's headless Chromium driven by Playwright, against the real app.

One Chromium per test session (started here with a DevTools port, Playwright attaches
with ``connect_over_cdp``), a new browser context per test. The application under test is
the real one (``create_app``): the built-in simulated PBX over TCP, the AMI connection,
tracker, pipeline, hub and websocket, on a database from the ``db`` fixture seeded with two
managers and a client with history. Playwright never downloads a browser: without
/usr/bin/chromium these tests are skipped, or fail when CI is set (CI must run them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from callpop.server.keys import EXTRA
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Agreement, Client, ClientPhone, Employee, Extension, Note, Promise
from tests.support.browser import KNOWN_NUMBER, PASSWORD, PASSWORD_HASH, Live
from tests.support.live import ami_logged_in
from tests.support.ports import bound_socket

CHROMIUM = os.environ.get("CALLPOP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_ws() -> Iterator[str]:
    """Start Chromium once; yield its DevTools websocket URL."""
    if os.environ.get("CALLPOP_BROWSER") == "0":
        pytest.skip("CALLPOP_BROWSER=0")
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        message = f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="callpop-chromium-")
    log_path = os.path.join(profile, "stderr.log")
    with open(log_path, "wb") as log_file:  # a file, not a pipe: Chromium must never block on writing
        proc = subprocess.Popen([CHROMIUM, *ARGS, "--remote-debugging-port=0",
                                 "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            with open(log_path, encoding="utf-8", errors="replace") as fp:
                found = re.search(r"DevTools listening on (ws://\S+)", fp.read())
            url = found.group(1) if found else None
            if url is None:
                time.sleep(0.05)
        if url is None:
            pytest.fail(f"chromium did not start (exit code {proc.poll()})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def db_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only here: the browser tests are about the page; the API and store tests
    cover both databases."""
    path = tmp_path / "callpop.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def browser(chromium_ws: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        attached = await pw.chromium.connect_over_cdp(chromium_ws)
        try:
            yield attached
        finally:
            await attached.close()


async def _seed(db: Database) -> tuple[int, int, int]:
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


async def _session_cookie(live: Live, who: str) -> dict[str, Any]:
    """A session of *who* signed as a login would sign it: typing the password costs an
    argon2 check (about 2 s on a busy CI machine) per browser context."""
    from sqlalchemy import select

    from callpop.server.auth import COOKIE, new_session_cookie
    from callpop.server.keys import DB, SECRET, SETTINGS

    async with live.app[DB].sessions() as s:
        emp_id, generation = (await s.execute(select(Employee.id, Employee.session_generation)
                                              .where(Employee.login == who))).one()
    value = new_session_cookie(live.app[SECRET], emp_id, generation, live.app[SETTINGS].web.session_hours)
    return {"name": COOKIE, "value": value, "url": live.url, "httpOnly": True, "sameSite": "Lax"}


async def _login(browser: Any, live: Live, who: str, init_script: str | None = None, *, form: bool = False) -> Any:
    """A fresh context (own cookies) logged in as *who*; returns the desk page.
    ``init_script`` runs in every page before the page's own scripts (stubs). With *form*
    the login form is filled in and sent, as a person does; else the session cookie is set."""
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
    if form:
        await page.goto(live.url + "/login")
        await page.fill("input[name=login]", who)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("form.login button[type=submit]")
    else:
        await context.add_cookies([await _session_cookie(live, who)])
        await page.goto(live.url + "/")
    await page.wait_for_selector("#connection-state[data-state=Connected]")
    return page


@pytest.fixture
async def live(db: Database, db_settings: Settings) -> AsyncIterator[Live]:
    from callpop.app import create_app

    anna, boris, client = await _seed(db)
    sock = bound_socket()  # the server listens on it: its port is never free for another to take
    settings = db_settings.replace(
        web=dataclasses.replace(db_settings.web, host="127.0.0.1", port=sock.getsockname()[1],
                                secret_key="browser-test-secret-of-32-bytes-or-more", default_language="en"),
        push=dataclasses.replace(db_settings.push, dismiss_after=1.5))
    app = create_app(settings, db=db)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        await ami_logged_in(app)
        pbx = app[EXTRA]["simulator"]
        pbx.speed = 2.0  # the captures' timing, twice as fast: a ringing card still rings for 7 s
        yield Live(f"http://127.0.0.1:{settings.web.port}", app, pbx, anna, boris, client)
    finally:
        await runner.cleanup()




@pytest.fixture
async def open_desk(browser: Any, live: Live) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Log in as someone in a fresh browser context; contexts close before the server stops."""
    contexts: list[Any] = []
    pages: list[Any] = []

    async def open_as(who: str, init_script: str | None = None, *, form: bool = False) -> Any:
        page = await _login(browser, live, who, init_script, form=form)
        contexts.append(page.context)
        pages.append(page)
        return page

    yield open_as
    for context in contexts:
        await context.close()
    refused = [v for page in pages for v in page.csp_violations]
    assert not refused, f"the Content-Security-Policy refused something the pages need: {refused}"
