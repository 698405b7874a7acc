"""Missed calls to return, over real HTTP on both databases: one line per call however many
phones it rang, only the manager's own clients' inbound calls, gone once someone answered
the client later or the call is marked done."""

from __future__ import annotations

import datetime as dt

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Call, CallParticipant, Client, utcnow
from tests.support.api import add_employee, logged_in, serve


async def _call(db: Database, client_id: int, minutes_ago: int, *, outcome: str = "missed",
                direction: str = "inbound", rang: tuple[int, ...] = ()) -> int:
    when = utcnow() - dt.timedelta(minutes=minutes_ago)
    async with db.sessions() as s:
        call = Call(pbx_id="main", call_key=f"k{client_id}-{minutes_ago}-{direction}", direction=direction,
                    client_number="+79161234567", client_id=client_id, started_at=when, outcome=outcome)
        s.add(call)
        await s.flush()
        s.add_all([CallParticipant(call_id=call.id, extension=str(100 + i), employee_id=emp)
                   for i, emp in enumerate(rang)])
        await s.commit()
        return call.id


async def test_missed_calls_to_return_once_per_call_and_done(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    boris = await add_employee(db, "boris")
    async with db.sessions() as s:
        mine = Client(name="Яковлев Борис", responsible_id=anna)
        answered_later = Client(name="Перезвонили", responsible_id=anna)
        theirs = Client(name="Чужой", responsible_id=boris)
        s.add_all([mine, answered_later, theirs])
        await s.commit()
        ids = mine.id, answered_later.id, theirs.id
    queue = await _call(db, ids[0], 30, rang=(anna, boris))  # a queue call that rang both
    await _call(db, ids[0], 20, direction="outbound", rang=(anna,))  # anna dialled, nobody answered
    await _call(db, ids[1], 50, rang=(anna,))
    await _call(db, ids[1], 40, outcome="answered", rang=(boris,))  # the client got through later
    await _call(db, ids[2], 10, rang=(anna,))  # boris's client
    await _call(db, ids[0], 60 * 24 * 8, rang=(anna,))  # last week's: history, not a to-do
    async with serve(db_settings, db) as server, logged_in(server, anna) as a:
        status, page = await a.call("GET", "/api/callbacks")
        assert status == 200
        assert [(i["call_id"], i["client_name"], i["display"]) for i in page["items"]] == [
            (queue, "Яковлев Борис", "+7 916 123-45-67")]
        status, _ = await a.call("POST", f"/api/callbacks/{queue}/done")
        assert status == 204
        status, _ = await a.call("POST", f"/api/callbacks/{queue}/done")  # twice is harmless
        assert status == 204
        _, page = await a.call("GET", "/api/callbacks")
        assert page["items"] == []
        status, body = await a.call("POST", "/api/callbacks/999999/done")
        assert status == 404 and body["field"] == "call_id"
