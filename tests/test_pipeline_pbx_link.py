"""The desk while the link to the PBX is down: every tab is told, and put right by a fresh
snapshot once callpop has re-read the channels."""

from __future__ import annotations

from callpop.store.db import Database
from callpop.telephony.events import Answered, Ringing
from tests.support.live import Recorder, StartLive, add_client, add_employee

NUMBER = "+79161234567"


async def test_tabs_learn_the_pbx_link_dropped_and_get_a_fresh_snapshot_when_it_is_back(
        start_live: StartLive, db: Database) -> None:
    rec = Recorder()
    live = await start_live(store=rec.hooks())
    await add_employee(db, "anna", ["101"])
    await add_employee(db, "boris", ["102"])
    await add_client(db, "Иван Петров", NUMBER)
    anna, boris = await live.tab("anna"), await live.tab("boris")
    await anna.start()
    await boris.start()
    await live.pipeline.handle([Ringing("k1", "inbound", NUMBER, "101"), Answered("k1", "101")])
    await anna.until("call.answered")
    live.pipeline.pbx_lost()
    lost = await anna.until("pbx.status")
    # the first PBX: its id, and its calls are the ids without a PBX prefix
    assert (lost["pbx"], lost["calls"], lost["connected"]) == ("main", "", False)
    assert (await boris.until("pbx.status"))["connected"] is False  # idle tabs too
    live.pipeline.resynced()
    assert (await anna.until("pbx.status"))["connected"] is True
    snapshot = await anna.until("snapshot")
    assert [(c["type"], c["call"]) for c in snapshot["calls"]] == [("call.answered", "k1")]
    assert (await boris.until("snapshot"))["calls"] == []
