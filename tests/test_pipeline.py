"""The pipeline seen from the browser: call events in, pops on the right tabs only.

Call events are fed straight into the pipeline (the tracker and AMI have their own tests;
test_app_ami.py runs the whole chain over TCP). Lookups are real, against the ``db``
fixture; the journal is recorded so we can count what the pipeline asked of it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from callpop.pipeline import LOGGED_IDS, STALE_AFTER
from callpop.settings import Settings
from callpop.settings_file import settings_from_mapping
from callpop.store.db import Database
from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing, RingStopped, Transferred
from tests.support.live import Live, Recorder, StartLive, add_client, add_employee

NUMBER = "+79161234567"


def ringing(call: str, agent: str, number: str | None = NUMBER, direction: str = "inbound",
            name: str | None = "Иван") -> Ringing:
    return Ringing(call=call, direction=direction, client=number, agent=agent, caller_name=name, at=1.0)  # type: ignore[arg-type]


async def _setup(start_live: StartLive, db: Database, rec: Recorder) -> Live:
    live = await start_live(store=rec.hooks())
    await add_employee(db, "anna", ["101"])
    await add_employee(db, "boris", ["102"])
    await add_employee(db, "vera", ["103"])
    await add_employee(db, "sveta", ["150"], role="supervisor")
    return live


async def test_pop_reaches_only_the_ringing_agent_with_history(db: Database, start_live: StartLive) -> None:
    rec = Recorder()
    live = await _setup(start_live, db, rec)
    await add_client(db, "Иван Петров", NUMBER, promise="выслать счёт", company="Ромашка")
    anna, boris = await live.tab("anna"), await live.tab("boris")
    assert await anna.start() == [] and await boris.start() == []
    await live.pipeline.handle([ringing("c1", "101")])
    pop = await anna.until("call.ringing")
    assert pop["agent"] == "101"
    card = pop["card"]
    assert card["match"] == "single"
    assert card["client"]["name"] == "Иван Петров"
    assert card["client"]["company"] == "Ромашка"
    assert [p["text"] for p in card["client"]["promises"]] == ["выслать счёт"]
    assert card["client"]["promises"][0]["overdue"] is True
    assert card["number"]["display"] == "+7 916 123-45-67"
    await boris.nothing()


async def test_supervisor_watching_all_sees_every_pop(db: Database, start_live: StartLive) -> None:
    rec = Recorder()
    live = await _setup(start_live, db, rec)
    sveta = await live.tab("sveta")
    await sveta.start()
    await live.pipeline.handle([ringing("c1", "101")])
    await sveta.nothing()  # own scope until she asks for all
    await sveta.ws.send_json({"type": "subscribe_all"})
    assert (await sveta.until("subscribed"))["scope"] == "all"
    snap = await sveta.until("snapshot")
    assert [(c["type"], c["call"], c["agent"]) for c in snap["calls"]] == [("call.ringing", "c1", "101")]
    await live.pipeline.handle([ringing("c2", "102", number="+79035550000")])
    pop = await sveta.until("call.ringing")
    assert (pop["call"], pop["agent"]) == ("c2", "102")


async def test_manager_may_not_watch_all(db: Database, start_live: StartLive) -> None:
    live = await _setup(start_live, db, Recorder())
    anna = await live.tab("anna")
    await anna.start()
    await anna.ws.send_json({"type": "subscribe_all"})
    err = await anna.until("error")
    assert err["error"] == "forbidden"
    await live.pipeline.handle([ringing("c1", "102")])
    await anna.nothing()


async def test_ring_group_and_tabs_share_one_lookup(db: Database, start_live: StartLive) -> None:
    rec = Recorder(lookup_delay=0.05)
    live = await _setup(start_live, db, rec)
    await add_client(db, "Группа", NUMBER)
    tabs = [await live.tab("anna"), await live.tab("anna"), await live.tab("anna"),
            await live.tab("boris"), await live.tab("vera")]
    for t in tabs:
        await t.start()
    await live.pipeline.handle([ringing("g1", "101"), ringing("g1", "102"), ringing("g1", "103")])
    pops = [await t.until("call.ringing") for t in tabs]
    assert [p["agent"] for p in pops] == ["101", "101", "101", "102", "103"]
    assert {p["card"]["client"]["name"] for p in pops} == {"Группа"}
    assert rec.lookups == [NUMBER]
    assert rec.opened == ["g1"]
    # 103 answers: the others' cards grey out
    await live.pipeline.handle([Answered("g1", "103"), RingStopped("g1", "101", "answered_elsewhere"),
                                RingStopped("g1", "102", "answered_elsewhere")])
    assert (await tabs[4].until("call.answered"))["agent"] == "103"
    stopped = await tabs[0].until("call.ring_stopped")
    assert stopped["reason"] == "answered_elsewhere"
    assert (await tabs[3].until("call.ring_stopped"))["reason"] == "answered_elsewhere"
    assert rec.lookups == [NUMBER]


async def test_internal_calls_are_journalled_never_popped(db: Database, start_live: StartLive) -> None:
    rec = Recorder()
    live = await _setup(start_live, db, rec)
    boris = await live.tab("boris")
    await boris.start()
    await live.pipeline.handle([ringing("i1", "102", number="101", direction="internal"),
                                Answered("i1", "102"),
                                Ended("i1", "internal", "101", "answered", ("102",), 12)])
    await live.pipeline.drain()
    await boris.nothing()
    assert rec.lookups == []
    assert rec.opened == ["i1"] and rec.closed == ["i1"]


async def test_transfer_brings_the_same_card_to_the_new_agent(db: Database, start_live: StartLive) -> None:
    rec = Recorder()
    live = await _setup(start_live, db, rec)
    await add_client(db, "Переводной", NUMBER, note="любит звонки утром")
    anna, boris = await live.tab("anna"), await live.tab("boris")
    await anna.start()
    await boris.start()
    await live.pipeline.handle([ringing("t1", "101"), Answered("t1", "101")])
    first = await anna.until("call.answered")
    await live.pipeline.handle([Transferred("t1", "101", "102", "attended")])
    moved = await boris.until("call.transferred")
    assert moved["agent"] == "102" and moved["from_agent"] == "101"
    assert moved["card"] == first["card"]
    assert [n["text"] for n in moved["card"]["client"]["notes"]] == ["любит звонки утром"]
    left = await anna.until("call.transferred")
    assert left["agent"] == "101"
    assert rec.lookups == [NUMBER]
    # boris reconnects mid-call: the card is back, as a call in conversation
    again = await live.tab("boris")
    calls = await again.start()
    assert [(c["type"], c["call"]) for c in calls] == [("call.answered", "t1")]


async def test_reconnect_gets_the_ringing_card_first(db: Database, start_live: StartLive) -> None:
    rec = Recorder()
    live = await _setup(start_live, db, rec)
    await add_client(db, "Снова", NUMBER)
    anna = await live.tab("anna")
    await anna.start()
    await live.pipeline.handle([ringing("r1", "101")])
    await anna.until("call.ringing")
    await anna.ws.close()
    anna2 = await live.tab("anna")
    hello = await anna2.next()
    assert hello["type"] == "hello" and hello["seq"] == 1
    snap = await anna2.next()
    assert snap["type"] == "snapshot" and snap["seq"] == 2
    assert [(c["type"], c["call"], c["card"]["client"]["name"], c["at"]) for c in snap["calls"]] == [
        ("call.ringing", "r1", "Снова", 1.0)]
    # after the snapshot, the live stream continues
    await live.pipeline.handle([RingStopped("r1", "101", "caller_hangup")])
    stopped = await anna2.until("call.ring_stopped")
    assert stopped["seq"] == 3 and stopped["reason"] == "caller_hangup"
    assert rec.lookups == [NUMBER]


async def test_ended_carries_call_id_and_clears_the_snapshot(db: Database, start_live: StartLive) -> None:
    rec = Recorder()
    live = await _setup(start_live, db, rec)
    anna = await live.tab("anna")
    await anna.start()
    await live.pipeline.handle([ringing("e1", "101"), Answered("e1", "101"),
                                Ended("e1", "inbound", NUMBER, "answered", ("101",), 42,
                                      agents_rang=("101",), talks=(AgentTalk("101", 42),))])
    ended = await anna.until("call.ended")
    assert (ended["outcome"], ended["talk_seconds"], ended["call_id"]) == ("answered", 42, 1001)
    await live.pipeline.drain()
    assert rec.closed == ["e1"]
    assert live.pipeline.snapshot(None) == []
    assert (await live.tab("anna")).ws is not None


async def test_lookup_failure_still_pops_and_the_next_call_works(db: Database, start_live: StartLive) -> None:
    rec = Recorder(fail_lookup=True)
    live = await _setup(start_live, db, rec)
    await add_client(db, "После сбоя", "+79035550000")
    anna = await live.tab("anna")
    await anna.start()
    await live.pipeline.handle([ringing("f1", "101")])
    pop = await anna.until("call.ringing")
    assert pop["card"]["match"] == "error"
    assert pop["card"]["number"]["e164"] == NUMBER
    rec.fail_lookup = False
    await live.pipeline.handle([ringing("f2", "101", number="+79035550000")])
    pop2 = await anna.until("call.ringing")
    assert pop2["card"]["client"]["name"] == "После сбоя"


async def test_calls_do_not_wait_for_each_others_lookups(db: Database, start_live: StartLive) -> None:
    """A slow lookup for one call does not hold up another call's pop: the five lookups
    are all under way at once (none has finished when the fifth starts)."""
    rec = Recorder(gate=asyncio.Event())
    live = await _setup(start_live, db, rec)
    anna = await live.tab("anna")
    await anna.start()
    await live.pipeline.handle([ringing(f"p{i}", "101", number=f"+7916000000{i}") for i in range(5)])
    await rec.started(5)
    assert rec.finished == []
    assert rec.gate is not None
    rec.gate.set()
    for _ in range(5):
        await anna.until("call.ringing")
    assert sorted(rec.finished) == sorted(f"+7916000000{i}" for i in range(5))


async def test_a_caller_is_looked_up_on_arrival_and_the_ringing_reuses_it(db: Database, start_live: StartLive) -> None:
    """The tracker's Arrival (the trunk's Newchannel) starts the lookup before any phone
    rings; the ringing then pops that card without a second lookup. A caller that never
    reaches a phone (hung up in the IVR) costs that one lookup and nothing else."""
    from callpop.telephony.events import Arrival

    gate = asyncio.Event()
    rec = Recorder(gate=gate)
    live = await _setup(start_live, db, rec)
    await add_client(db, "Иван Петров", NUMBER, promise="выслать счёт")
    anna = await live.tab("anna")
    await anna.start()
    live.pipeline.prefetch([Arrival("q1", NUMBER), Arrival("ivr", "+79990001122")])
    await rec.started(2)  # the dialplan / queue runs; both lookups are under way
    assert rec.lookups == [NUMBER, "+79990001122"] and rec.finished == []
    await live.pipeline.handle([ringing("q1", "101")])
    gate.set()  # the early lookup finishes only now, after the phone started ringing
    pop = await anna.until("call.ringing")
    assert pop["card"]["client"]["name"] == "Иван Петров"
    assert rec.lookups == [NUMBER, "+79990001122"]  # the ringing reused q1's lookup: no second one
    await anna.nothing()  # nothing pops for the caller who never rang


async def test_a_hint_that_comes_after_the_phone_rang_starts_no_second_lookup(db: Database,
                                                                               start_live: StartLive) -> None:
    """The dialplan's card lookup waits while questions are answered
    (server/pbx_prefetch.py): when the phone rings first, the ringing looks the caller up
    and the late hint adds no lookup of its own."""
    from callpop.telephony.events import Arrival

    gate = asyncio.Event()
    rec = Recorder(gate=gate)
    live = await _setup(start_live, db, rec)
    await add_client(db, "Иван Петров", NUMBER)
    anna = await live.tab("anna")
    await anna.start()
    await live.pipeline.handle([ringing("q1", "101")])
    await rec.started(1)  # the ringing's own lookup is under way
    live.pipeline.prefetch([Arrival("q1", NUMBER)])
    assert live.pipeline.early_running == 0
    gate.set()
    pop = await anna.until("call.ringing")
    assert pop["card"]["client"]["name"] == "Иван Петров"
    assert rec.lookups == [NUMBER]


async def test_a_number_changed_after_arrival_is_looked_up_again(db: Database, start_live: StartLive) -> None:
    """The dialplan may rewrite the caller ID (a prefix stripped, a CRM lookup): the card is
    for the number the phone rings with, not the one that arrived."""
    from callpop.telephony.events import Arrival

    rec = Recorder()
    live = await _setup(start_live, db, rec)
    await add_client(db, "Иван Петров", NUMBER)
    anna = await live.tab("anna")
    await anna.start()
    live.pipeline.prefetch([Arrival("c9", "+79995550000")])
    await live.pipeline.handle([ringing("c9", "101")])
    pop = await anna.until("call.ringing")
    assert pop["card"]["match"] == "single" and pop["card"]["client"]["name"] == "Иван Петров"
    assert rec.lookups == ["+79995550000", NUMBER]


async def test_forgotten_calls_are_named_in_the_log_per_pbx(db_settings: Settings, db: Database,
                                                            start_live: StartLive,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Calls whose hangup never came are forgotten after hours of silence; the log line
    says which (the first few ids, then how many more) and on which PBX, so they can be
    looked for in the PBX's own logs."""
    several = settings_from_mapping({"ami": {"office2": {"host": "127.0.0.1"}}}, environ={})
    live = await start_live(db_settings.replace(ami=several.ami, more_ami=several.more_ami), store=Recorder().hooks())
    main_calls = [f"17000000{i:02d}.1" for i in range(LOGGED_IDS + 3)]
    await live.pipeline.handle([ringing(call, "101") for call in main_calls])
    await live.pipeline.handle([ringing(call, "office2:101") for call in ("office2:1700000000.1", "office2:17.2")])
    await live.pipeline.drain()
    caplog.set_level(logging.INFO, logger="callpop.pipeline")
    assert live.pipeline.sweep(time.monotonic() + STALE_AFTER + 1) == LOGGED_IDS + 5
    lines = {getattr(r, "pbx", None): r.getMessage() for r in caplog.records if "no hangup seen" in r.getMessage()}
    assert lines == {
        "main": f"forgot {LOGGED_IDS + 3} calls with no hangup seen: {', '.join(main_calls[:LOGGED_IDS])} and 3 more",
        "office2": "forgot 2 calls with no hangup seen: office2:1700000000.1, office2:17.2",
    }
    assert live.pipeline.active == 0
