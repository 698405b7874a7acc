"""The dialplan's answers are remembered, and forgotten as soon as a write through callpop
can change them: the call goes to the manager who has the client now, a number added a
moment ago is known. A real app on a real port, the writes through the HTTP API, both
databases; the cache lives far longer than the test, so only the invalidation can make
the new answer appear. Writes by other processes: test_pbx_outside_writes.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from callpop.settings import DialplanSettings, Settings
from callpop.store.db import Database
from tests.support.live import HttpClient, Live, StartLive, add_client, add_employee

NUMBER = "+79161234567"
LONG = 600.0  # seconds an answer may be remembered: longer than any test run


async def ask(live: Live, path: str, **query: str) -> tuple[str, str]:
    client = await live.client()
    resp = await client.get(path, params=query)
    assert resp.status == 200
    return await resp.text(), resp.headers.get("X-Callpop-Status", "")


async def api(user: HttpClient, method: str, path: str, body: Any) -> Any:
    csrf = (await (await user.get("/api/me")).json())["csrf_token"]
    resp = await user.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


@pytest.fixture
async def live(db_settings: Settings, start_live: StartLive) -> AsyncIterator[Live]:
    started = await start_live(db_settings.replace(dialplan=DialplanSettings(timeout=5.0, cache_seconds=LONG)))
    yield started
    await started.close()


async def test_a_new_responsible_manager_gets_the_next_call(live: Live, db: Database) -> None:
    anna = await add_employee(db, "anna", ["101"])
    boris = await add_employee(db, "boris", ["102"])
    await add_employee(db, "sue", role="supervisor")
    client = await add_client(db, "Иван Петров", NUMBER, responsible_id=anna)
    for login in ("anna", "boris"):
        await (await live.tab(login)).start()
    assert await ask(live, "/pbx/route", number=NUMBER) == ("dial=PJSIP/101&regular=1", "ok")
    sue = await live.login("sue")
    await api(sue, "PATCH", f"/api/clients/{client}", {"responsible_id": boris})
    assert await ask(live, "/pbx/route", number=NUMBER) == ("dial=PJSIP/102&regular=1", "ok")
    await api(sue, "PATCH", f"/api/clients/{client}", {"status": "new"})
    assert await ask(live, "/pbx/route", number=NUMBER) == ("dial=PJSIP/102&regular=0", "ok")


async def test_a_number_added_through_the_api_is_known_at_once(live: Live, db: Database) -> None:
    anna = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван Петров", "+79035550000", responsible_id=anna)
    assert await ask(live, "/pbx/caller-name", number=NUMBER) == ("", "unknown")
    manager = await live.login("anna")
    await api(manager, "POST", f"/api/clients/{client}/phones", {"number": "8 916 123-45-67"})
    assert await ask(live, "/pbx/caller-name", number=NUMBER) == ("Иван Петров", "ok")
    await api(manager, "PATCH", f"/api/clients/{client}", {"name": "Иван Сидоров"})
    assert await ask(live, "/pbx/caller-name", number=NUMBER) == ("Иван Сидоров", "ok")
