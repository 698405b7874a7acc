"""Contact logging rules: minimum talk, direction switches, internal, regular clients,
one per manager/client/day in the KPI time zone, transfers, idempotent replay."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import func, select

from callpop.settings import KpiSettings, Settings
from callpop.store.db import Database
from callpop.store.kpi.contacts import log_contacts
from callpop.store.models import Contact
from callpop.telephony.events import AgentTalk, Ended
from tests.support.kpi_rows import call, client, employee, utc


def ended(talks: dict[str, int], direction: str = "inbound") -> Ended:
    return Ended(call="pbx-1", direction=direction, client="+79990000000",  # type: ignore[arg-type]
                 outcome="answered", answered_by=tuple(talks), talk_seconds=sum(talks.values()),
                 talks=tuple(AgentTalk(a, s) for a, s in talks.items()))


def with_kpi(settings: Settings, **changes: object) -> Settings:
    return settings.replace(kpi=dataclasses.replace(settings.kpi, **changes))


async def test_contact_counts_only_from_the_minimum_talk(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        c = await client(s)
        short = await call(s, c, utc(2026, 3, 2, 9))
        exact = await call(s, c, utc(2026, 3, 3, 9))
        [r1] = await log_contacts(s, short.id, ended({"101": 29}), settings)
        [r2] = await log_contacts(s, exact.id, ended({"101": 30}), settings)
        await s.commit()
    assert (r1.counted, r1.reason, r1.talk_seconds, r1.employee_id) == (False, "short_talk", 29, anna.id)
    assert (r2.counted, r2.reason) == (True, None)


async def test_internal_calls_and_unknown_clients_never_count(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        await employee(s, "Anna", "101")
        c = await client(s)
        internal = await call(s, c, utc(2026, 3, 2), direction="internal")
        unknown = await call(s, None, utc(2026, 3, 2))
        [r] = await log_contacts(s, internal.id, ended({"101": 300}, "internal"), settings)
        assert (r.counted, r.reason) == (False, "internal")
        assert await log_contacts(s, unknown.id, ended({"101": 300}), settings) == []


async def test_direction_switches(db: Database, settings: Settings) -> None:
    no_out = with_kpi(settings, count_outbound=False)
    async with db.sessions() as s:
        await employee(s, "Anna", "101")
        c = await client(s)
        out = await call(s, c, utc(2026, 3, 2, 9), direction="outbound")
        inb = await call(s, c, utc(2026, 3, 3, 9), direction="inbound")
        [r_out] = await log_contacts(s, out.id, ended({"101": 100}, "outbound"), no_out)
        [r_in] = await log_contacts(s, inb.id, ended({"101": 100}), no_out)
    assert (r_out.counted, r_out.reason) == (False, "direction_off")
    assert r_in.counted
    assert judge_inbound_off(settings.kpi) == "direction_off"


def judge_inbound_off(kpi: KpiSettings) -> str | None:
    from callpop.store.kpi.contacts import judge

    return judge(dataclasses.replace(kpi, count_inbound=False), direction="inbound", talk_seconds=99,
                 regular=True, already_counted_today=False).reason


async def test_new_clients_do_not_count(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        await employee(s, "Anna", "101")
        c = await client(s, status="new")
        row = await call(s, c, utc(2026, 3, 2))
        [r] = await log_contacts(s, row.id, ended({"101": 100}), settings)
    assert (r.counted, r.reason) == (False, "not_regular")


async def test_one_counted_contact_per_manager_client_and_local_day(db: Database, settings: Settings) -> None:
    # Europe/Moscow is UTC+3: 20:59 UTC is 23:59 on the 2nd, 21:01 UTC is 00:01 on the 3rd.
    async with db.sessions() as s:
        await employee(s, "Anna", "101")
        boris = await employee(s, "Boris", "102")
        c = await client(s)
        morning = await call(s, c, utc(2026, 3, 2, 6))
        late = await call(s, c, utc(2026, 3, 2, 20, 59))
        after_midnight = await call(s, c, utc(2026, 3, 2, 21, 1))
        [a] = await log_contacts(s, morning.id, ended({"101": 60}), settings)
        [b] = await log_contacts(s, late.id, ended({"101": 60}), settings)
        [d] = await log_contacts(s, after_midnight.id, ended({"101": 60}), settings)
        other = await call(s, c, utc(2026, 3, 2, 7))
        [e] = await log_contacts(s, other.id, ended({"102": 60}), settings)
    assert (a.counted, b.counted, b.reason, d.counted) == (True, False, "duplicate_day", True)
    assert e.counted and e.employee_id == boris.id  # another manager is not a duplicate


async def test_day_boundary_follows_the_configured_timezone(db: Database, settings: Settings) -> None:
    utc_zone = with_kpi(settings, timezone="UTC")
    async with db.sessions() as s:
        await employee(s, "Anna", "101")
        c = await client(s)
        first = await call(s, c, utc(2026, 3, 2, 20, 59))
        second = await call(s, c, utc(2026, 3, 2, 21, 1))
        [a] = await log_contacts(s, first.id, ended({"101": 60}), utc_zone)
        [b] = await log_contacts(s, second.id, ended({"101": 60}), utc_zone)
    assert a.counted and (b.counted, b.reason) == (False, "duplicate_day")


async def test_transfer_counts_for_each_manager_who_talked_enough(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        boris = await employee(s, "Boris", "102")
        vera = await employee(s, "Vera", "103")
        c = await client(s)
        row = await call(s, c, utc(2026, 3, 2))
        rows = await log_contacts(s, row.id, ended({"101": 45, "102": 200, "103": 10}), settings)
    got = {r.employee_id: (r.counted, r.reason, r.talk_seconds) for r in rows}
    assert got == {anna.id: (True, None, 45), boris.id: (True, None, 200), vera.id: (False, "short_talk", 10)}


async def test_replay_logs_nothing_twice(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        await employee(s, "Anna", "101")
        await employee(s, "Boris", "102")
        c = await client(s)
        row = await call(s, c, utc(2026, 3, 2))
        first = await log_contacts(s, row.id, ended({"101": 45, "102": 200}), settings)
        await s.commit()
        before = [(r.id, r.employee_id, r.counted, r.reason) for r in first]
    async with db.sessions() as s:  # a restart: a new session replays the same end of call
        again = await log_contacts(s, row.id, ended({"101": 45, "102": 200}), settings)
        await s.commit()
        total = await s.scalar(select(func.count()).select_from(Contact))
    assert [(r.id, r.employee_id, r.counted, r.reason) for r in again] == before
    assert total == 2


async def test_after_the_journal_closes_a_transferred_call(db: Database, settings: Settings) -> None:
    """The pipeline's order: journal.open_call at ringing, close_call at the end, then
    log_contacts with the same Ended, twice (a replay) — the journal's rows are enough."""
    from callpop.store import journal
    from callpop.store.employees import employees_by_extension
    from callpop.telephony.events import Ringing

    t0 = utc(2026, 3, 2, 9).timestamp()
    end = Ended(call="pbx-7", direction="inbound", client="+79990000000", outcome="answered",
                answered_by=("101", "102"), talk_seconds=140, started_at=t0, ended_at=t0 + 150,
                talks=(AgentTalk("101", 20), AgentTalk("102", 120)))
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        boris = await employee(s, "Boris", "102")
        c = await client(s)
        await s.commit()
        await journal.open_call(s, "main", Ringing(call="pbx-7", direction="inbound", client="+79990000000",
                                                   agent="101", at=t0), c.id)
        call_id = await journal.close_call(s, "main", end, c.id, await employees_by_extension(s))
        await s.commit()
        first = await log_contacts(s, call_id, end, settings)
        await s.commit()
        again = await log_contacts(s, call_id, end, settings)
        await s.commit()
    got = {r.employee_id: (r.counted, r.reason, r.talk_seconds) for r in first}
    assert got == {anna.id: (False, "short_talk", 20), boris.id: (True, None, 120)}
    assert [r.id for r in again] == [r.id for r in first]
    assert first[0].started_at.astimezone(dt.UTC).date() == dt.date(2026, 3, 2)


async def test_an_end_without_per_agent_talk_uses_the_answering_agent(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        c = await client(s)
        row = await call(s, c, utc(2026, 3, 2))
        end = Ended(call="pbx-9", direction="inbound", client="+79990000000", outcome="answered",
                    answered_by=("101",), talk_seconds=45)
        [r] = await log_contacts(s, row.id, end, settings)
    assert (r.employee_id, r.talk_seconds, r.counted) == (anna.id, 45, True)
