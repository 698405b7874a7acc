"""The journal's durable spool: what waits in it survives the daemon and is written, once,
when the database is there."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callpop.journal_spool import Spool, SpoolInUse, decode_event, encode_event
from callpop.journal_writer import JournalWriter
from callpop.settings import JournalSettings, Settings
from callpop.store.db import Database
from callpop.store.models import Call, CallParticipant, Contact
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing
from tests.support.live import add_client, add_employee

NUMBER = "+79161234567"


def _events(call: str) -> list[Ringing | Answered | Ended]:
    return [Ringing(call, "inbound", NUMBER, "101", caller_name="Иван «Ромашка»", at=1_800_000_000.0),
            Answered(call, "101", at=1_800_000_003.0),
            Ended(call, "inbound", NUMBER, "answered", ("101",), 45, caller_name="Иван «Ромашка»",
                  started_at=1_800_000_000.0, ended_at=1_800_000_048.0, agents_rang=("101",),
                  talks=(AgentTalk("101", 45),), answer_unseen=True)]


def test_events_come_back_from_the_spool_as_they_went_in(tmp_path: Path) -> None:
    for event in _events("c1"):
        back = decode_event(encode_event(event))
        assert [getattr(back, f) for f in back.__slots__] == [getattr(event, f) for f in event.__slots__]
    spool = Spool(tmp_path / "spool.db")
    spool.append([("open", None, _events("c1")[0]), ("close", 7, _events("c1")[2])])
    spool.close()
    again = Spool(tmp_path / "spool.db")  # a new process: the file is all there is
    jobs = again.head(10)
    assert [(j.kind, j.client_id, j.event.call) for j in jobs] == [("open", None, "c1"), ("close", 7, "c1")]
    again.delete([jobs[0].id])
    assert again.count() == 1


def test_an_end_spooled_by_an_older_daemon_comes_back_with_a_known_talk() -> None:
    """Spools written before a talk's upper bound was kept hold [agent, seconds] pairs:
    such a talk was exact, and a daemon upgraded with writes waiting reads them so."""
    event = _events("c1")[2]
    old = encode_event(event).replace('[["101", 45, null]]', '[["101", 45]]')
    assert '[["101", 45]]' in old
    back = decode_event(old)
    assert isinstance(back, Ended) and back.talks == (AgentTalk("101", 45, None),)
    unseen = dataclasses.replace(event, talks=(AgentTalk("101", 2, 10),))
    again = decode_event(encode_event(unseen))
    assert isinstance(again, Ended) and again.talks == (AgentTalk("101", 2, 10),)


def test_a_spool_is_one_processs_only(tmp_path: Path) -> None:
    """Two instances on one host with the same spool_path would write each other's calls
    and heartbeat: the second is refused, naming the setting, until the first lets go."""
    first = Spool(tmp_path / "spool.db")
    with pytest.raises(SpoolInUse, match=rf"spool_path {tmp_path / 'spool.db'} is in use by another callpop "
                                         rf"process \(pid {os.getpid()}\): give each instance its own"):
        Spool(tmp_path / "spool.db")
    first.close()
    Spool(tmp_path / "spool.db").close()


async def test_writes_left_in_the_spool_are_written_at_the_next_start_once(db: Database, settings: Settings,
                                                                            tmp_path: Path) -> None:
    """A daemon stopped (or killed) while the database was away left its call rows in the
    spool; the next start writes them, looks the client up (its lookup had failed) and logs
    the contact. Written twice (a crash between the commit and the delete), nothing doubles."""
    client = await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    path = tmp_path / "left.db"
    spool = Spool(path)
    rows: list[tuple[str, int | None, Ringing | Answered | Ended]] = []
    for kind, event in zip(("open", "answer", "close"), _events("s1"), strict=True):
        rows.append((kind, None, event))
    spool.append(rows + rows)  # the same writes twice
    spool.close()
    cfg = settings.replace(journal=JournalSettings(spool_path=str(path), retry_interval=0.01))
    writer = JournalWriter(cfg, db, StoreHooks.default())
    writer.start()
    try:
        assert writer.spooling
        for _ in range(500):
            if not writer.spooling:
                break
            await asyncio.sleep(0.01)
        assert not writer.spooling
    finally:
        await writer.close()
    async with db.sessions() as session:
        calls = (await session.scalars(select(Call))).all()
        parts = (await session.execute(select(func.count()).select_from(CallParticipant))).scalar_one()
        contacts = [(c.employee_id, c.counted) for c in (await session.scalars(select(Contact))).all()]
    assert [(c.call_key, c.client_id, c.outcome, c.talk_seconds) for c in calls] == [("s1", client, "answered", 45)]
    assert parts == 1 and contacts == [(emp, True)]
    assert Spool(path).count() == 0
