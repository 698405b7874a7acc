"""A call callpop learns from a channel listing (it was restarted while the call was on):
Asterisk lists when each channel was created, never when it was answered, so the talk is
an interval; the journal records the part it is sure of, and a contact counts only on it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from zoneinfo import ZoneInfo

from sqlalchemy import select

from callpop import kpi
from callpop.journal_writer import JournalWriter
from callpop.server.kpi.drill_view import present
from callpop.server.l10n import formats_for
from callpop.settings import KpiSettings, Settings
from callpop.store.db import Database
from callpop.store.directory import client_history
from callpop.store.kpi.drill import VALUE_LABELS, drill
from callpop.store.models import Call, CallParticipant, Contact
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import AgentTalk, Answered, CallEvent, Ended, Ringing
from callpop.telephony.tracker import CallTracker
from tests.support.captures import CONFIG
from tests.support.live import add_client, add_employee

NUMBER = "+79161234567"
LISTED_AT = 1_800_000_100.0


def _listing(agent_up_for: int, linked: str = "1800000090.1") -> list[dict[str, str]]:
    """An inbound call, its trunk channel 10 s old and the agent's channel *agent_up_for* s
    old, both up and bridged: the agent answered at some moment the listing does not say."""
    def item(uid: str, name: str, num: str, age: int) -> dict[str, str]:
        return {"Event": "CoreShowChannel", "Channel": name, "Uniqueid": uid, "Linkedid": linked,
                "ChannelState": "6", "ChannelStateDesc": "Up", "CallerIDNum": num, "CallerIDName": "",
                "Exten": "101", "Context": "from-trunk", "BridgeId": "bridge-1", "Duration": f"00:00:{age:02d}"}
    return [item(linked, "PJSIP/trunk-00000001", NUMBER, 10),
            item(linked[:-2] + ".2", "PJSIP/101-00000002", "101", agent_up_for)]


def _played(agent_up_for: int, ends_after: float, listed_at: float = LISTED_AT) -> list[CallEvent]:
    """The listing at *listed_at*, then the call gone from the next one *ends_after* s later."""
    tracker = CallTracker(CONFIG)
    linked = f"{int(listed_at) - 10}.1"
    events = tracker.resync(_listing(agent_up_for, linked), now=listed_at)
    events += tracker.resync([], now=listed_at + ends_after)
    return events


def test_the_talk_of_an_answer_not_seen_is_counted_from_the_listing_and_bounded_by_the_channel() -> None:
    events = _played(agent_up_for=8, ends_after=2.5)
    answered = [e for e in events if isinstance(e, Answered)]
    assert [(e.agent, e.at, e.unseen) for e in answered] == [("101", LISTED_AT, True)]
    (ringing,) = [e for e in events if isinstance(e, Ringing)]
    assert ringing.at == LISTED_AT - 8  # the phone rang when its channel was created
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert ended.outcome == "answered" and ended.answer_unseen
    # at least the 2.5 s since the listing, at most the 10.5 s since the agent's channel
    assert ended.talk_seconds == 2
    assert [(t.agent, t.talk_seconds, t.at_most) for t in ended.talks] == [("101", 2, 10)]
    assert ended.started_at == LISTED_AT - 10


async def _journal(db: Database, settings: Settings, events: list[CallEvent], client: int | None = None) -> None:
    writer = JournalWriter(settings, db, StoreHooks.default())
    writer.start()
    try:
        for event in events:
            if isinstance(event, Ringing):
                await writer.open_call(event, client)
            elif isinstance(event, Answered):
                await writer.answer(event)
            elif isinstance(event, Ended):
                await writer.close_call(event, None, resolve=True)
    finally:
        await writer.close()


async def _sweep(db: Database, settings: Settings, last_beat: float | None, **kwargs: float) -> None:
    """A restarted writer's sweep of the rows nobody follows (its last heartbeat
    *last_beat*); exactly one row is closed."""
    writer = JournalWriter(settings, db, StoreHooks.default())
    writer.start()
    writer.last_beat = last_beat
    try:
        assert await writer.sweep([], **kwargs) == 1
    finally:
        await writer.close()


async def _the_call(db: Database) -> tuple[Call, Contact]:
    """The journal's only call row and its only contact."""
    async with db.sessions() as session:
        (call,) = (await session.scalars(select(Call))).all()
        (contact,) = (await session.scalars(select(Contact))).all()
    return call, contact


async def test_a_contact_whose_answer_was_not_seen_counts_only_on_the_talk_that_is_sure(
        db: Database, settings: Settings) -> None:
    """min_talk 6 s: a call seen talking 2.5 s before it ended, whose agent's channel was
    8 s old, may have talked 10 s or 2 s. Not counted, and the row says why; the call row
    says its talk is a lower bound. One seen talking 7 s counts."""
    client = await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    cfg = settings.replace(kpi=KpiSettings(min_talk_seconds=6, one_per_client_per_day=False))
    await _journal(db, cfg, _played(agent_up_for=8, ends_after=2.5))
    call, contact = await _the_call(db)
    async with db.sessions() as session:
        (part,) = (await session.scalars(select(CallParticipant))).all()
    assert (call.client_id, call.outcome, call.talk_seconds, call.answer_unseen) == (client, "answered", 2, True)
    assert call.answered_at is not None and call.answered_at.timestamp() == LISTED_AT
    assert (part.extension, part.answered, part.talk_seconds) == ("101", True, 2)
    assert (contact.employee_id, contact.counted, contact.reason, contact.talk_seconds) == (
        emp, False, "uncertain_talk", 2)

    # shown as what it is: the client's last calls and the KPI drill-down
    async with db.sessions() as session:
        (item,) = (await client_history(session, client, "calls")).items
        day = dt.datetime.fromtimestamp(LISTED_AT, dt.UTC).date()
        drilled = await drill(session, "contacts", emp, kpi.Period("day", day, day + dt.timedelta(days=1)),
                              cfg, dt.datetime.now(dt.UTC))
    assert {k: v for k, v in item.to_json().items() if k in ("outcome", "talk_seconds", "answer_unseen")} == {
        "outcome": "answered", "talk_seconds": 2, "answer_unseen": True}
    columns, rows = present(drilled, formats_for("en"), lambda code: VALUE_LABELS.get(code, code))
    assert [dict(zip(columns, row, strict=True)) for row in rows] == [{
        "started": rows[0][0], "client": "Иван", "direction": "Inbound", "talk_seconds": "≥ 0:02",
        "counted": "No", "reason": "Talk maybe too short (answer or end time unknown)"}]


async def test_a_contact_whose_answer_was_not_seen_counts_when_the_sure_talk_is_enough(
        db: Database, settings: Settings) -> None:
    await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    cfg = settings.replace(kpi=KpiSettings(min_talk_seconds=6, one_per_client_per_day=False))
    await _journal(db, cfg, _played(agent_up_for=8, ends_after=7.2))
    async with db.sessions() as session:
        (contact,) = (await session.scalars(select(Contact))).all()
    assert (contact.employee_id, contact.counted, contact.reason, contact.talk_seconds) == (emp, True, None, 7)


async def test_an_answer_recorded_live_before_a_restart_wins_over_the_listing(
        db: Database, settings: Settings) -> None:
    """callpop saw the answer, died, and learned the call again from a listing: the talk is
    counted from the answer it recorded, exact, not an interval."""
    await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    cfg = settings.replace(kpi=KpiSettings(min_talk_seconds=6, one_per_client_per_day=False))
    events = _played(agent_up_for=8, ends_after=2.5)
    ringing = next(e for e in events if isinstance(e, Ringing))
    before = [ringing, Answered(ringing.call, "101", at=LISTED_AT - 6)]  # seen live, then the kill
    await _journal(db, cfg, before)
    await _journal(db, cfg, events)
    call, contact = await _the_call(db)
    assert (call.talk_seconds, call.answer_unseen) == (8, False)
    assert (contact.employee_id, contact.counted, contact.talk_seconds) == (emp, True, 8)


async def test_an_answer_recorded_live_does_not_make_a_talk_whose_end_was_not_seen_short(
        db: Database, settings: Settings) -> None:
    """callpop saw the answer, died, learned the call again from a listing, then lost the
    PBX link and the call was gone from the next listing: the talk from the recorded answer
    (3 s) is exact at its start only; it may have gone on until the call was found gone."""
    await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    cfg = settings.replace(kpi=KpiSettings(min_talk_seconds=6, one_per_client_per_day=False))
    events = _played(agent_up_for=8, ends_after=2.5)
    ringing = next(e for e in events if isinstance(e, Ringing))
    await _journal(db, cfg, [ringing, Answered(ringing.call, "101", at=LISTED_AT - 1)])  # seen live, then the kill
    gone = [dataclasses.replace(e, end_unseen=True, talks=(AgentTalk("101", 2, 10),)) if isinstance(e, Ended)
            else e for e in events]
    await _journal(db, cfg, gone)
    call, contact = await _the_call(db)
    assert (call.talk_seconds, call.answer_unseen, call.end_unseen) == (3, False, True)
    assert (contact.employee_id, contact.counted, contact.reason, contact.talk_seconds) == (
        emp, False, "uncertain_talk", 3)


async def test_a_row_learned_from_a_listing_and_closed_by_a_sweep_stays_uncertain(
        db: Database, settings: Settings) -> None:
    """callpop learned the call from a listing (answer not seen), then died again before the
    call ended: the sweep of its next start closes the row at its last heartbeat, 2.5 s
    after the listing. The talk is still only a lower bound (the answer may have come up to
    8 s before the listing, the end any time before the sweep): the contact is kept as
    uncertain, never judged "too short", and the row still says its answer was not seen."""
    client = await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    cfg = settings.replace(kpi=KpiSettings(min_talk_seconds=6, one_per_client_per_day=False))
    listed_at = time.time() - 60.0  # the sweep closes rows started before it runs
    before_death = [e for e in _played(agent_up_for=8, ends_after=2.5, listed_at=listed_at)
                    if not isinstance(e, Ended)]
    await _journal(db, cfg, before_death, client)
    await _sweep(db, cfg, listed_at + 2.5)  # its last heartbeat before the second death
    call, contact = await _the_call(db)
    assert (call.outcome, call.talk_seconds, call.end_unseen, call.answer_unseen) == ("answered", 2, True, True)
    assert (contact.employee_id, contact.counted, contact.reason, contact.talk_seconds) == (
        emp, False, "uncertain_talk", 2)


async def test_an_answered_row_whose_end_was_not_seen_is_uncertain_not_short(
        db: Database, settings: Settings) -> None:
    """The answer was seen live, then callpop died and the call ended while it was down:
    the talk up to the last heartbeat (2 s) is a lower bound, the end may have been any
    time before the restart's sweep: not "too short"."""
    client = await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    cfg = settings.replace(kpi=KpiSettings(min_talk_seconds=6, one_per_client_per_day=False))
    began = time.time() - 60.0
    ringing = Ringing("1799999990.1", "inbound", NUMBER, "101", at=began)
    await _journal(db, cfg, [ringing, Answered(ringing.call, "101", at=began + 3)], client)
    await _sweep(db, cfg, began + 5.5)
    call, contact = await _the_call(db)
    assert (call.outcome, call.talk_seconds, call.end_unseen, call.answer_unseen) == ("answered", 2, True, False)
    assert (contact.employee_id, contact.counted, contact.reason, contact.talk_seconds) == (
        emp, False, "uncertain_talk", 2)
    async with db.sessions() as session:
        (item,) = (await client_history(session, client, "calls")).items
    # the client's last calls say the talk is a lower bound (shown "talk ≥ 0:02, end time unknown")
    assert {k: v for k, v in item.to_json().items() if k in ("outcome", "talk_seconds", "answer_unseen",
                                                             "end_unseen")} == {
        "outcome": "answered", "talk_seconds": 2, "answer_unseen": False, "end_unseen": True}
    async with db.sessions() as session:
        day = dt.datetime.fromtimestamp(began, ZoneInfo(cfg.kpi.timezone)).date()
        drilled = await drill(session, "contacts", emp, kpi.Period("day", day, day + dt.timedelta(days=1)),
                              cfg, dt.datetime.now(dt.UTC))
    columns, rows = present(drilled, formats_for("en"), lambda code: VALUE_LABELS.get(code, code))
    assert [{k: v for k, v in zip(columns, row, strict=True) if k in ("talk_seconds", "reason")} for row in rows] == [
        {"talk_seconds": "≥ 0:02", "reason": "Talk maybe too short (answer or end time unknown)"}]


async def test_a_row_learned_from_a_listing_and_closed_by_the_periodic_sweep_stays_uncertain(
        db: Database, settings: Settings) -> None:
    """callpop learned the call from a listing and then lost track of it with no heartbeat
    to go by (the call vanished without a Hangup): the periodic sweep of rows open too long
    closes it at the listing, the latest the answer can have been. Nothing of the talk is
    sure, all of it may have happened: uncertain, not "too short"."""
    client = await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    cfg = settings.replace(kpi=KpiSettings(min_talk_seconds=6, one_per_client_per_day=False))
    listed_at = time.time() - 60.0
    learned = [e for e in _played(agent_up_for=8, ends_after=2.5, listed_at=listed_at) if not isinstance(e, Ended)]
    await _journal(db, cfg, learned, client)
    await _sweep(db, cfg, None, older_than=30.0)  # no heartbeat from a run that died
    call, contact = await _the_call(db)
    assert (call.outcome, call.talk_seconds, call.end_unseen, call.answer_unseen) == ("answered", 0, True, True)
    assert (contact.employee_id, contact.counted, contact.reason, contact.talk_seconds) == (
        emp, False, "uncertain_talk", 0)


async def test_a_call_learned_from_a_listing_and_gone_after_a_lost_link_is_uncertain(
        db: Database, settings: Settings) -> None:
    """callpop learned the call from a listing, heard it talking 2.5 s more, then lost the
    PBX link; the listing of the next login no longer shows it. Neither its answer nor its
    end was seen: at least 2 s, at most from the agent's channel to that listing."""
    client = await add_client(db, "Иван", NUMBER)
    emp = await add_employee(db, "anna", ["101"])
    cfg = settings.replace(kpi=KpiSettings(min_talk_seconds=6, one_per_client_per_day=False))
    tracker = CallTracker(CONFIG)
    events = tracker.resync(_listing(agent_up_for=8, linked=f"{int(LISTED_AT) - 10}.1"), now=LISTED_AT)
    tracker.link_lost(LISTED_AT + 2.5)
    events += tracker.resync([], now=LISTED_AT + 20)
    await _journal(db, cfg, events, client)
    call, contact = await _the_call(db)
    assert (call.outcome, call.talk_seconds, call.end_unseen, call.answer_unseen) == ("answered", 2, True, True)
    assert (contact.employee_id, contact.counted, contact.reason, contact.talk_seconds) == (
        emp, False, "uncertain_talk", 2)
