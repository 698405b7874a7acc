"""A transfer completed while its target rang ("blonde"), from the tracker to the desk and the
journal: the target's phone rang on into the client's call, so nobody missed a call: no
missed row in the journal (internal or not; the consultation is answered, by nobody, like
an attended transfer's consultation is by the target), and the target's desk is popped
once, for the client's call, and never told that a ringing stopped before the answer."""

from __future__ import annotations

from sqlalchemy import select

from callpop.store.db import Database
from callpop.store.models import Call, CallParticipant
from callpop.telephony.events import Ended
from callpop.telephony.tracker import CallTracker
from tests.support.captures import SIP13_CONFIG, STREAMS, messages, run
from tests.support.live import StartLive, add_employee


async def test_consultation_handed_to_the_client_call_is_no_missed_call(db: Database,
                                                                        start_live: StartLive) -> None:
    live = await start_live()
    await add_employee(db, "anna", ["201"])
    await add_employee(db, "boris", ["202"])
    boris = await live.tab("boris")
    assert await boris.start() == []
    events = run(messages(STREAMS / "sip13-blonde-transfer.jsonl"), CallTracker(SIP13_CONFIG))
    client_call = next(e.call for e in events if isinstance(e, Ended) and e.direction == "inbound")
    await live.pipeline.handle(events)
    await live.pipeline.drain()

    seen = []
    while True:
        msg = await boris.next()
        seen.append((msg["type"], msg["call"]))
        if msg["type"] == "call.ended":
            break
    assert seen == [("call.ringing", client_call), ("call.transferred", client_call),
                    ("call.answered", client_call), ("call.ended", client_call)]

    async with db.sessions() as session:
        calls = {row.call_key: row for row in (await session.scalars(select(Call))).all()}
        parts = (await session.execute(select(Call.call_key, CallParticipant.extension, CallParticipant.answered)
                                       .join(CallParticipant, CallParticipant.call_id == Call.id))).all()
    assert {(c.direction, c.outcome) for c in calls.values()} == {("inbound", "answered"), ("internal", "answered")}
    consultation = next(key for key, c in calls.items() if c.direction == "internal")
    assert [(ext, answered) for key, ext, answered in parts if key == consultation] == [("202", False)]
    assert calls[consultation].talk_seconds == 0
    assert sorted((ext, answered) for key, ext, answered in parts if key == client_call) == [
        ("201", True), ("202", True)]
