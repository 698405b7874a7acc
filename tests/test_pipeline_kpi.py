""""How much have I earned" moves live: a call that becomes a counted contact pushes
``kpi_changed`` to that manager's tabs, and only such a call does.

Call events are fed straight into the pipeline with the real journal and contact logging
(the ``db`` fixture); the manager's websocket tab is a real one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select, update

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Client, Contact
from callpop.telephony.events import AgentTalk, Answered, CallEvent, Ended, Ringing
from tests.support.live import Live, Recorder, StartLive, Tab, add_client, add_employee

REGULAR_SHORT, NEW_LONG, REGULAR_LONG = "+79161110001", "+79161110002", "+79161110003"


def _call(call: str, number: str, agent: str, talk: int) -> list[CallEvent]:
    start = time.time() - talk - 5
    return [Ringing(call=call, direction="inbound", client=number, agent=agent, caller_name=None, at=start),
            Answered(call=call, agent=agent, at=start + 5),
            Ended(call, "inbound", number, "answered", (agent,), talk, started_at=start, ended_at=start + 5 + talk,
                  agents_rang=(agent,), talks=(AgentTalk(agent, talk),))]


async def _contacts(db: Database, employee_id: int, want: int) -> dict[int, bool]:
    """client id -> counted, once *want* contacts of the employee are written."""
    rows: dict[int, bool] = {}
    for _ in range(200):
        async with db.sessions() as session:
            rows = {c: k for c, k in (await session.execute(
                select(Contact.client_id, Contact.counted).where(Contact.employee_id == employee_id))).all()}
        if len(rows) >= want:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {len(rows)} of {want} contacts written")


async def _drain(tab: Tab, within: float = 0.4) -> list[dict[str, Any]]:
    """Every message the tab gets until it has been quiet for *within* seconds."""
    got: list[dict[str, Any]] = []
    while True:
        try:
            got.append(await tab.next(within))
        except TimeoutError:
            return got


async def test_a_counted_contact_pushes_kpi_changed_to_that_manager_only(settings: Settings, db: Database,
                                                                         start_live: StartLive) -> None:
    min_talk = settings.kpi.min_talk_seconds
    live: Live = await start_live(store=Recorder(real_journal=True).hooks())
    anna = await add_employee(db, "anna", ["101"])
    await add_employee(db, "boris", ["102"])
    short_client = await add_client(db, "Короткий", REGULAR_SHORT)
    new_client = await add_client(db, "Новенький", NEW_LONG)
    regular_client = await add_client(db, "Постоянный", REGULAR_LONG)
    async with db.sessions() as session:
        await session.execute(update(Client).where(Client.id == new_client).values(status="new"))
        await session.commit()
    tab_anna, tab_boris = await live.tab("anna"), await live.tab("boris")
    await tab_anna.start()
    await tab_boris.start()

    # too short with a regular client, long enough with a new one: contacts, not counted
    await live.pipeline.handle(_call("s1", REGULAR_SHORT, "101", min_talk - 1))
    await live.pipeline.handle(_call("n1", NEW_LONG, "101", min_talk + 30))
    assert await _contacts(db, anna, 2) == {short_client: False, new_client: False}
    seen = await _drain(tab_anna)
    assert [m["type"] for m in seen if m["type"] == "call.ended"] == ["call.ended", "call.ended"]
    assert not [m for m in seen if m["type"] == "kpi_changed"], seen

    # exactly the minimum with a regular client counts: anna's tab is told, boris's is not
    await live.pipeline.handle(_call("r1", REGULAR_LONG, "101", min_talk))
    changed = await tab_anna.until("kpi_changed", wait=5)
    assert changed["employee_id"] == anna
    assert (await _contacts(db, anna, 3))[regular_client] is True
    assert not [m for m in await _drain(tab_boris) if m["type"] == "kpi_changed"]
