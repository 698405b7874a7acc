"""The dialplan's first question answered from the directory in memory, and a write through
callpop seen by the very next question: a real app on a real port, both databases. The
answer cache is off here, so only the memory or the database can answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from callpop.server.keys import EXTRA
from callpop.settings import DialplanSettings, Settings
from callpop.store.caller_index import IndexKeeper
from callpop.store.db import Database
from tests.server.test_metrics import scrape
from tests.server.test_pbx_answer_cache import api, ask
from tests.support.caller_index import fresh
from tests.support.live import Live, StartLive, add_client, add_employee

NUMBER = "+79161234567"


@pytest.fixture
async def live(db_settings: Settings, start_live: StartLive) -> AsyncIterator[Live]:
    started = await start_live(db_settings.replace(dialplan=DialplanSettings(timeout=5.0, cache_seconds=0.0)))
    yield started
    await started.close()


async def test_questions_are_answered_from_memory_until_a_write_and_again_after(live: Live, db: Database) -> None:
    anna = await add_employee(db, "anna", ["101"])
    boris = await add_employee(db, "boris", ["102"])
    await add_employee(db, "sue", role="supervisor")
    client = await add_client(db, "Иван Петров", NUMBER, responsible_id=anna)
    for login in ("anna", "boris"):
        await (await live.tab(login)).start()
    keeper: IndexKeeper = live.app[EXTRA]["caller_index"]
    await fresh(keeper)
    before = keeper.answered
    assert await ask(live, "/pbx/caller-name", number=NUMBER) == ("Иван Петров", "ok")
    assert await ask(live, "/pbx/route", number=NUMBER) == ("dial=PJSIP/101&regular=1", "ok")
    assert await ask(live, "/pbx/caller-name", number="+79990000000") == ("", "unknown")
    assert keeper.answered == before + 3

    sue = await live.login("sue")
    await api(sue, "PATCH", f"/api/clients/{client}", {"responsible_id": boris, "name": "Иван Сидоров"})
    assert await ask(live, "/pbx/route", number=NUMBER) == ("dial=PJSIP/102&regular=1", "ok")
    assert await ask(live, "/pbx/caller-name", number=NUMBER) == ("Иван Сидоров", "ok")
    assert keeper.answered == before + 3  # read from the database: memory was behind it
    assert (await scrape(live))[("callpop_dialplan_memory_current", ())] == 0

    await fresh(keeper)
    assert await ask(live, "/pbx/caller-name", number=NUMBER) == ("Иван Сидоров", "ok")
    assert await ask(live, "/pbx/route", number=NUMBER) == ("dial=PJSIP/102&regular=1", "ok")
    assert keeper.answered == before + 5
    metrics = await scrape(live)
    assert metrics[("callpop_dialplan_memory_current", ())] == 1
    assert metrics[("callpop_dialplan_memory_clients", ())] == 1
    assert metrics[("callpop_dialplan_memory_answers_total", ())] == keeper.answered


async def test_memory_index_off_reads_every_question(db_settings: Settings, db: Database,
                                                     start_live: StartLive) -> None:
    await add_client(db, "Иван Петров", NUMBER)
    live = await start_live(db_settings.replace(dialplan=DialplanSettings(timeout=5.0, memory_index=False)))
    try:
        assert "caller_index" not in live.app[EXTRA]
        assert await ask(live, "/pbx/caller-name", number=NUMBER) == ("Иван Петров", "ok")
    finally:
        await live.close()
