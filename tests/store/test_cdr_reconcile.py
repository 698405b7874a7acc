"""Call rows callpop could not see whole, put right from the PBX's CDR rows (SQLite and
PostgreSQL): the journal row, its participants and contacts as a manager would see them."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from callpop.cdr_reconciler import CdrReconciler
from callpop.journal_writer import JournalWriter
from callpop.settings import CdrSettings, KpiSettings, Settings
from callpop.simulator.cdr import cdr_table
from callpop.store.db import Database
from callpop.store.models import Call, CallParticipant, Contact
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing
from tests.support.live import add_client, add_employee
from tests.support.ports import PortHold

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0).timestamp() - 600
NUMBER = "+79161234567"
# the PBX writes calldate in its own local time, without a zone: three hours off callpop's
# UTC here, to show that only durations are taken from it
PBX_CLOCK = dt.timedelta(hours=3)


def pbx_time(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None) + PBX_CLOCK


def cdr(linkedid: str, channel: str, dstchannel: str, start: float, duration: int, billsec: int = 0, *,
        uniqueid: str | None = None, disposition: str | None = None, sequence: int = 0) -> dict[str, Any]:
    return {"calldate": pbx_time(start), "clid": "", "src": "", "dst": "", "dcontext": "from-pstn",
            "channel": channel, "dstchannel": dstchannel, "lastapp": "Dial", "lastdata": "",
            "duration": duration, "billsec": billsec,
            "disposition": disposition or ("ANSWERED" if billsec else "NO ANSWER"), "amaflags": 3,
            "accountcode": "", "uniqueid": uniqueid or linkedid, "userfield": "", "peeraccount": "",
            "linkedid": linkedid, "sequence": sequence}


@pytest.fixture
async def cdr_url(db: Database, tmp_path: Path) -> AsyncIterator[str]:
    """The PBX's CDR store: an SQLite file (cdr_sqlite3_custom) beside an SQLite journal, a
    ``cdr`` table in the PostgreSQL database (cdr_pgsql)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'master.db'}" if db.dialect == "sqlite" else db.url
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(cdr_table().metadata.create_all)
    await engine.dispose()
    yield url


async def write_cdr(url: str, *rows: dict[str, Any]) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(cdr_table().insert(), list(rows))
    await engine.dispose()


def cdr_settings(settings: Settings, url: str, *, min_talk: int = 10, one_per_day: bool = False,
                 **cdr: Any) -> Settings:
    return settings.replace(
        cdr=CdrSettings(url=url, wait_after_end=0.0, give_up_after=3600.0, interval=0.1, **cdr),
        kpi=KpiSettings(min_talk_seconds=min_talk, one_per_client_per_day=one_per_day))


class Instance:
    """One callpop's journal writer and reconciler, with the kpi_changed it announced."""

    def __init__(self, settings: Settings, db: Database, spool: Path) -> None:
        self.settings = settings.replace(journal=dataclasses.replace(settings.journal, spool_path=str(spool)))
        self.writer = JournalWriter(self.settings, db, StoreHooks.default())
        self.kpi_changed: list[tuple[int, ...]] = []
        self.writer.on_counted = lambda ids: self.kpi_changed.append(tuple(ids))
        self.reconciler = CdrReconciler(self.settings, db, self.writer)

    async def __aenter__(self) -> Instance:
        self.writer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reconciler.close()
        await self.writer.close()


async def listed_talking(writer: JournalWriter, key: str, client: int, *, seen_talk: int, at_most: int,
                         agent: str = "101") -> None:
    """A call re-learned from a listing after a restart (answer unseen), its end seen:
    talk a lower bound, the contact kept as uncertain_talk."""
    await writer.open_call(Ringing(key, "inbound", NUMBER, agent, at=T0), client)
    await writer.answer(Answered(key, agent, at=T0 + 30 - seen_talk, unseen=True))
    await writer.close_call(Ended(key, "inbound", NUMBER, "answered", (agent,), seen_talk, started_at=T0,
                                  ended_at=T0 + 30, answered_at=T0 + 30 - seen_talk, agents_rang=(agent,),
                                  talks=(AgentTalk(agent, seen_talk, at_most=at_most),), answer_unseen=True), client)


async def rows(db: Database) -> tuple[dict[str, Call], dict[str, list[tuple[int, bool, str | None, int]]],
                                      dict[str, list[tuple[str, bool, int]]]]:
    async with db.sessions() as session:
        calls = {c.call_key: c for c in (await session.scalars(select(Call))).all()}
        by_id = {c.id: c.call_key for c in calls.values()}
        contacts: dict[str, list[tuple[int, bool, str | None, int]]] = {}
        for k in (await session.scalars(select(Contact).order_by(Contact.employee_id))).all():
            contacts.setdefault(by_id[k.call_id], []).append((k.employee_id, k.counted, k.reason, k.talk_seconds))
        parts: dict[str, list[tuple[str, bool, int]]] = {}
        for p in (await session.scalars(select(CallParticipant).order_by(CallParticipant.extension))).all():
            parts.setdefault(by_id[p.call_id], []).append((p.extension, p.answered, p.talk_seconds))
    return calls, contacts, parts


def _at(moment: dt.datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


async def test_a_call_answered_while_callpop_was_down_gets_its_talk_and_contact_from_the_cdr(
        db: Database, settings: Settings, cdr_url: str, tmp_path: Path) -> None:
    """Found talking by the listing after a restart, 4 s of talk seen of 25: kept as
    uncertain_talk. The CDR row (by Linkedid) says 25 s: the contact counts, once."""
    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    await write_cdr(cdr_url, cdr("1700000000.1", "PJSIP/carrier-00000001", "PJSIP/101-00000002", T0, 30, 25,
                                 sequence=1))
    async with Instance(cdr_settings(settings, cdr_url), db, tmp_path / "spool.db") as one:
        await listed_talking(one.writer, "1700000000.1", client, seen_talk=4, at_most=28)
        _calls, contacts, _parts = await rows(db)
        assert contacts["1700000000.1"] == [(emp, False, "uncertain_talk", 4)]

        first = await one.reconciler.run_once()
        again = await one.reconciler.run_once()

    calls, contacts, parts = await rows(db)
    row = calls["1700000000.1"]
    assert (first.reconciled, first.counted, again.candidates) == (1, 1, 0)
    assert (row.outcome, row.talk_seconds, row.answer_unseen, row.end_unseen, row.times_source) == (
        "answered", 25, False, False, "cdr")
    # placed on callpop's clock from the end it saw: answered 25 s before it, whatever the PBX's clock
    assert _at(row.answered_at) == T0 + 5 and _at(row.ended_at) == T0 + 30
    assert contacts["1700000000.1"] == [(emp, True, None, 25)]
    assert parts["1700000000.1"] == [("101", True, 25)]
    assert one.kpi_changed == [(emp,)]  # once, not again at the second pass


async def test_rows_are_found_by_uniqueid_when_the_table_has_no_linkedid(
        db: Database, settings: Settings, cdr_url: str, tmp_path: Path) -> None:
    """A call that rang when callpop died and ended while it was down: outcome unknown.
    Its CDR rows (no linkedid column: by the first channel's uniqueid) say whether it was
    answered: one was (its end placed from callpop's start), one was not (missed)."""
    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    await write_cdr(cdr_url,
                    cdr("", "PJSIP/carrier-00000001", "PJSIP/101-00000002", T0, 40, 32, uniqueid="1700000001.1"),
                    cdr("", "PJSIP/carrier-00000003", "PJSIP/101-00000004", T0, 20, uniqueid="1700000002.3"))
    async with Instance(cdr_settings(settings, cdr_url, linkedid_column=""), db, tmp_path / "spool.db") as one:
        for key in ("1700000001.1", "1700000002.3"):
            await one.writer.open_call(Ringing(key, "inbound", NUMBER, "101", at=T0), client)
        one.writer.last_beat = T0 + 3
        assert await one.writer.sweep(set()) == 2
        calls, _contacts, _parts = await rows(db)
        assert {c.outcome for c in calls.values()} == {"unknown"}
        result = await one.reconciler.run_once()

    calls, contacts, _parts = await rows(db)
    assert result.reconciled == 2
    answered, missed = calls["1700000001.1"], calls["1700000002.3"]
    assert (answered.outcome, answered.talk_seconds, answered.end_unseen) == ("answered", 32, False)
    assert _at(answered.answered_at) == T0 + 8 and _at(answered.ended_at) == T0 + 40
    assert contacts["1700000001.1"] == [(emp, True, None, 32)]
    assert (missed.outcome, missed.talk_seconds, missed.end_unseen, missed.answered_at) == ("missed", 0, False, None)
    assert "1700000002.3" not in contacts


async def test_a_transferred_call_is_the_union_of_its_segments_and_each_agent_has_a_share(
        db: Database, settings: Settings, cdr_url: str, tmp_path: Path) -> None:
    """Answered by 101 while callpop was up (recorded), transferred to 102 and ended while
    it was down. Four CDR rows: the caller with 101, 103's ring, 101's consultation with
    102 (two agents: not the caller's talk), the caller with 102."""
    anna = await add_employee(db, "anna", ["101"])
    boris = await add_employee(db, "boris", ["102"])
    client = await add_client(db, "Иван", NUMBER)
    key = "1700000010.1"
    await write_cdr(cdr_url,
                    cdr(key, "PJSIP/carrier-00000001", "PJSIP/101-00000002", T0, 12, 10, sequence=1),
                    cdr(key, "PJSIP/carrier-00000001", "PJSIP/103-00000003", T0, 2, sequence=2),
                    cdr(key, "PJSIP/101-00000004", "PJSIP/102-00000005", T0 + 8, 4, 2, uniqueid="1700000011.4",
                        sequence=3),
                    cdr(key, "PJSIP/carrier-00000001", "PJSIP/102-00000005", T0 + 12, 20, 15, sequence=4))
    async with Instance(cdr_settings(settings, cdr_url), db, tmp_path / "spool.db") as one:
        await one.writer.open_call(Ringing(key, "inbound", NUMBER, "101", at=T0), client)
        await one.writer.answer(Answered(key, "101", at=T0 + 2))
        one.writer.last_beat = T0 + 6  # killed 4 s into the talk
        assert await one.writer.sweep(set()) == 1
        _calls, contacts, _parts = await rows(db)
        assert contacts[key] == [(anna, False, "uncertain_talk", 4)]
        result = await one.reconciler.run_once()

    calls, contacts, parts = await rows(db)
    row = calls[key]
    assert result.reconciled == 1
    # the caller's connected time: 10 s with 101, then 15 s with 102 (not the 2 s consultation)
    assert (row.outcome, row.talk_seconds, row.end_unseen) == ("answered", 25, False)
    # the live answer stands; the end is placed 30 s after it (from the CDR's durations)
    assert _at(row.answered_at) == T0 + 2 and _at(row.ended_at) == T0 + 32
    assert parts[key] == [("101", True, 10), ("102", True, 15), ("103", False, 0)]
    assert contacts[key] == [(anna, True, None, 10), (boris, True, None, 15)]


async def test_a_call_without_cdr_rows_stays_uncertain_and_is_given_up(
        db: Database, settings: Settings, cdr_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    async with Instance(cdr_settings(settings, cdr_url), db, tmp_path / "spool.db") as one:
        await listed_talking(one.writer, "1700000020.1", client, seen_talk=4, at_most=28)
        waiting = await one.reconciler.run_once()
        one.reconciler._clock = lambda: T0 + 30 + 3601  # past give_up_after
        with caplog.at_level(logging.WARNING, logger="callpop.cdr_reconciler"):
            after = await one.reconciler.run_once()

    calls, contacts, _parts = await rows(db)
    row = calls["1700000020.1"]
    assert (waiting.candidates, waiting.waiting, waiting.reconciled) == (1, 1, 0)
    assert after.candidates == 0 and one.reconciler.unmatched == 1
    assert "given up" in caplog.text and "1700000020.1" in caplog.text
    assert (row.answer_unseen, row.talk_seconds, row.times_source) == (True, 4, "ami")
    assert contacts["1700000020.1"] == [(emp, False, "uncertain_talk", 4)]
    assert one.kpi_changed == []


async def test_a_queue_call_answered_by_the_pbx_itself_is_not_trusted(
        db: Database, settings: Settings, cdr_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A queue answers the caller at once: the row's answer is the PBX's, not the agent's,
    so billsec says nothing of the agent's talk. Nothing is guessed."""
    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    await write_cdr(cdr_url, cdr("1700000030.1", "PJSIP/carrier-00000001", "PJSIP/101-00000002", T0, 30, 30))
    async with Instance(cdr_settings(settings, cdr_url), db, tmp_path / "spool.db") as one:
        await listed_talking(one.writer, "1700000030.1", client, seen_talk=4, at_most=28)
        with caplog.at_level(logging.WARNING, logger="callpop.cdr_reconciler"):
            first = await one.reconciler.run_once()
            await one.reconciler.run_once()

    _calls, contacts, _parts = await rows(db)
    assert (first.reconciled, first.unusable) == (0, 1)
    assert caplog.text.count("are not used") == 1  # said once, not at every pass
    assert contacts["1700000030.1"] == [(emp, False, "uncertain_talk", 4)]


async def test_two_instances_reconciling_at_once_count_each_contact_once(
        db: Database, settings: Settings, cdr_url: str, tmp_path: Path) -> None:
    """Two callpop instances on one database, both with the CDR store, both finding the
    same uncertain rows: one writes each, the other nothing; the one-contact-per-client-
    and-day rule holds across them (two calls of one client the same day: one counts)."""
    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    keys = [f"17000001{n:02d}.1" for n in range(6)]
    await write_cdr(cdr_url, *(cdr(k, f"PJSIP/carrier-000000{n:02d}", f"PJSIP/101-000001{n:02d}", T0, 30, 20)
                              for n, k in enumerate(keys)))
    configured = cdr_settings(settings, cdr_url, one_per_day=True)
    async with Instance(configured, db, tmp_path / "a.db") as one, \
            Instance(configured, db, tmp_path / "b.db") as two:
        for key in keys:
            await listed_talking(one.writer, key, client, seen_talk=4, at_most=28)
        await asyncio.gather(one.reconciler.run_once(), two.reconciler.run_once())
        again = await asyncio.gather(one.reconciler.run_once(), two.reconciler.run_once())

    calls, contacts, _parts = await rows(db)
    assert all(calls[k].times_source == "cdr" and calls[k].talk_seconds == 20 for k in keys)
    assert [c for k in keys for c in contacts[k]].count((emp, True, None, 20)) == 1
    assert sorted(c[2] or "" for k in keys for c in contacts[k]) == [""] + ["duplicate_day"] * 5
    assert len(one.kpi_changed) + len(two.kpi_changed) == 1
    assert [p.candidates for p in again] == [0, 0]


async def test_an_unreachable_cdr_database_is_logged_without_its_password(
        db: Database, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    closed = PortHold()  # no database there, and none can start there while it is held
    url = f"postgresql+asyncpg://cdr_reader:s3cret-pw@127.0.0.1:{closed.port}/asteriskcdrdb"
    async with Instance(cdr_settings(settings, url, timeout=3.0), db, tmp_path / "spool.db") as one:
        await listed_talking(one.writer, "1700000040.1", client, seen_talk=4, at_most=28)
        with caplog.at_level(logging.WARNING, logger="callpop.cdr_reconciler"):
            down = await one.reconciler.run_once()
            await one.reconciler.run_once()

    calls, _contacts, _parts = await rows(db)
    assert down.unreachable and down.waiting == 1
    assert caplog.text.count("is unreachable") == 1  # once per outage
    closed.close()
    assert f"cdr_reader:***@127.0.0.1:{closed.port}/asteriskcdrdb" in caplog.text
    assert "s3cret-pw" not in caplog.text
    assert calls["1700000040.1"].answer_unseen


async def test_a_cdr_database_without_its_driver_turns_reconciliation_off_with_one_error(
        db: Database, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """FreePBX's CDR store on MySQL needs an async MySQL driver callpop does not ship: the
    daemon says so once and runs on (the pops matter more), rows stay as they are."""
    url = "mysql+aiomysql://cdr_reader:s3cret-pw@pbx-db/asteriskcdrdb"
    async with Instance(cdr_settings(settings, url), db, tmp_path / "spool.db") as one:
        with caplog.at_level(logging.ERROR, logger="callpop.cdr_reconciler"):
            started = one.reconciler.start()
    assert started is False
    assert "cannot be used" in caplog.text and "aiomysql" in caplog.text
    assert "cdr_reader:***@pbx-db/asteriskcdrdb" in caplog.text and "s3cret-pw" not in caplog.text


async def test_a_row_whose_client_was_never_written_gets_it_with_the_cdr_correction(
        db: Database, settings: Settings, cdr_url: str, tmp_path: Path) -> None:
    """The row is written at the first ringing, before the client lookup ends; a daemon
    killed then leaves it without a client. Ringing at the kill, over while callpop was
    down: the sweep closes it as unknown, the CDR says answered, 32 s. The client is looked
    up again from the row's number and the contact counts, once."""
    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    key = "1700000003.1"
    await write_cdr(cdr_url, cdr(key, "PJSIP/carrier-00000001", "PJSIP/101-00000002", T0, 40, 32, sequence=1))
    async with Instance(cdr_settings(settings, cdr_url), db, tmp_path / "spool.db") as one:
        await one.writer.open_call(Ringing(key, "inbound", NUMBER, "101", at=T0), None)
        one.writer.last_beat = T0 + 3
        assert await one.writer.sweep(set()) == 1
        calls, contacts, _parts = await rows(db)
        assert (calls[key].client_id, calls[key].outcome) == (None, "unknown") and key not in contacts

        first = await one.reconciler.run_once()
        again = await one.reconciler.run_once()

    calls, contacts, _parts = await rows(db)
    row = calls[key]
    assert (first.reconciled, first.counted, again.candidates) == (1, 1, 0)
    assert (row.client_id, row.outcome, row.talk_seconds, row.end_unseen, row.times_source) == (
        client, "answered", 32, False, "cdr")
    assert contacts[key] == [(emp, True, None, 32)]
    assert one.kpi_changed == [(emp,)]
