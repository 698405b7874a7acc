"""The simulated PBX, driven through the real AmiConnection and tracker over TCP.

Each scenario is placed with a chosen client, caller name and agents; the tracker must
report the call a person would see: who rang, who answered, how it ended, transfers with
the same call id, click-to-call as an outbound call of the right agent.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callpop.simulator.pbx import SimulatedPbx
from callpop.simulator.scenario import SCENARIOS
from callpop.telephony.connection import AmiConnection
from callpop.telephony.events import Ended, Ringing
from tests.support.ami import Collector, ami_settings, running, tracker, wait_until

CLIENT = "+79031234567"
AGENTS = [str(a) for a in range(101, 111)]


class Rig:
    def __init__(self, pbx: SimulatedPbx, conn: AmiConnection, sink: Collector) -> None:
        self.pbx, self.conn, self.sink = pbx, conn, sink

    async def call(self, scenario: str, agent: str | list[str], name: str | None = "Иван Петров",
                   client: str = CLIENT) -> list[tuple[Any, ...]]:
        start = len(self.sink.events)
        lid = await self.pbx.place_call(scenario, client=client, agent=agent, caller_name=name)
        await self.sink.wait_for(lambda ev: any(isinstance(e, Ended) and e.call == lid for e in ev[start:]))
        return [_short(e, lid) for e in self.sink.events[start:]]


def _short(e: Any, lid: str) -> tuple[Any, ...]:
    d = e.as_dict()
    same = d.pop("call") == lid
    if d["event"] == "ended":
        return ("ended", same, d["direction"], d["client"], d["outcome"], tuple(d["answered_by"]))
    if d["event"] == "ringing":
        return ("ringing", same, d["direction"], d["client"], d["agent"], e.caller_name)
    if d["event"] == "transferred":
        return ("transferred", same, d["from_agent"], d["to_agent"], d["kind"])
    return (d["event"], same, d["agent"], d.get("reason"))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    pbx = SimulatedPbx("callpop", "s3cret", AGENTS, speed=40.0, rng_seed=3)
    port = await pbx.start()
    sink = Collector()
    conn = AmiConnection(ami_settings(port), tracker(), sink)
    try:
        async with running(conn):
            yield Rig(pbx, conn, sink)
    finally:
        await pbx.stop()


N = "Иван Петров"


async def test_incoming_answered(rig: Rig) -> None:
    assert await rig.call("incoming_answered", "105") == [
        ("ringing", True, "inbound", CLIENT, "105", N), ("answered", True, "105", None),
        ("ended", True, "inbound", CLIENT, "answered", ("105",))]


async def test_incoming_no_answer_and_caller_hangup(rig: Rig) -> None:
    assert await rig.call("incoming_noanswer", "106", name=None) == [
        ("ringing", True, "inbound", CLIENT, "106", None), ("ring_stopped", True, "106", "no_answer"),
        ("ended", True, "inbound", CLIENT, "missed", ())]
    assert await rig.call("caller_hangup", "107", client="89161234567") == [
        ("ringing", True, "inbound", "+79161234567", "107", N), ("ring_stopped", True, "107", "caller_hangup"),
        ("ended", True, "inbound", "+79161234567", "missed", ())]


async def test_ring_group_first_agent_answers(rig: Rig) -> None:
    got = await rig.call("ring_group", ["105", "106", "107"], name="<script>alert(1)</script>")
    assert sorted(g[4] for g in got if g[0] == "ringing") == ["105", "106", "107"]
    assert {g[5] for g in got if g[0] == "ringing"} == {"<script>alert(1)</script>"}
    assert ("answered", True, "105", None) in got
    assert sorted(g[2] for g in got if g[0] == "ring_stopped") == ["106", "107"]
    assert {g[3] for g in got if g[0] == "ring_stopped"} == {"answered_elsewhere"}
    assert got[-1] == ("ended", True, "inbound", CLIENT, "answered", ("105",))


async def test_queue_answered_and_abandoned(rig: Rig) -> None:
    got = await rig.call("queue_answered", ["108", "101", "102", "103"])
    assert sorted(g[4] for g in got if g[0] == "ringing") == ["101", "102", "103", "108"]
    assert got[-1] == ("ended", True, "inbound", CLIENT, "answered", ("108",))
    got = await rig.call("queue_abandoned", ["101", "102", "103", "104"])
    assert [g[0] for g in got].count("ringing") == 8  # rung twice (retry), then the caller gave up
    assert got[-1] == ("ended", True, "inbound", CLIENT, "missed", ())


async def test_outbound_call(rig: Rig) -> None:
    assert await rig.call("outbound", "109", client="84950001122") == [
        ("ringing", True, "outbound", "+74950001122", "109", None), ("answered", True, "109", None),
        ("ended", True, "outbound", "+74950001122", "answered", ("109",))]


async def test_blind_transfer_keeps_the_call_id(rig: Rig) -> None:
    got = await rig.call("blind_transfer", ["104", "105"])
    assert ("transferred", True, "104", "105", "blind") in got
    assert got[-1] == ("ended", True, "inbound", CLIENT, "answered", ("104", "105"))
    assert all(g[1] for g in got)


async def test_attended_transfer_keeps_the_call_id(rig: Rig) -> None:
    got = await rig.call("attended_transfer", ["102", "103"])
    assert ("transferred", True, "102", "103", "attended") in got
    assert got[-1] == ("ended", True, "inbound", CLIENT, "answered", ("102", "103"))
    consult = [g for g in got if not g[1]]  # 102 calling 103 before completing: an internal call
    assert consult and {g[2] for g in consult if g[0] in ("ringing", "ended")} == {"internal"}


async def test_click_to_call_via_originate_is_an_outbound_call_of_that_agent(rig: Rig) -> None:
    await rig.conn.originate("PJSIP/103", "89161112233", "from-agents-sip", caller_id="Manager 103 <103>")
    await rig.sink.wait_for(lambda ev: any(isinstance(e, Ended) for e in ev))
    got = [e.as_dict() for e in rig.sink.events]
    call = got[0]["call"]
    assert got == [
        {"event": "ringing", "call": call, "direction": "outbound", "client": "+79161112233", "agent": "103"},
        {"event": "answered", "call": call, "agent": "103"},
        {"event": "ended", "call": call, "direction": "outbound", "client": "+79161112233",
         "outcome": "answered", "answered_by": ["103"], "talk_seconds": 0}]


async def test_every_scenario_has_fresh_increasing_ids(rig: Rig) -> None:
    ids = [await rig.pbx.place_call(s, client=CLIENT, agent="101") for s in SCENARIOS]
    assert len(set(ids)) == len(ids)
    assert [tuple(map(int, i.split("."))) for i in ids] == sorted(tuple(map(int, i.split("."))) for i in ids)


async def test_every_client_gets_every_event_and_survives_another_leaving(rig: Rig) -> None:
    sink2 = Collector()
    conn2 = AmiConnection(ami_settings(_port(rig.pbx)), tracker(), sink2)
    async with running(conn2):
        assert rig.pbx.clients == 2
        first = await rig.call("incoming_answered", "101")
        await sink2.wait_for(lambda ev: any(isinstance(e, Ended) for e in ev))
        assert [_short(e, e.call) for e in sink2.events] == first
    await wait_until(lambda: rig.pbx.clients == 1)
    assert (await rig.call("incoming_answered", "102"))[-1][4] == "answered"


def _port(pbx: SimulatedPbx) -> int:
    assert pbx._server is not None
    port: int = pbx._server.sockets[0].getsockname()[1]
    return port


async def _raw(port: int, *actions: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for a in actions:
        writer.write(a.encode())
    await writer.drain()
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 0.3):
            data += chunk
    except TimeoutError:
        pass
    writer.close()
    return data


async def test_answers_actions_like_asterisk() -> None:
    pbx = SimulatedPbx("callpop", "s3cret", speed=1.0)
    port = await pbx.start()
    try:
        bad = await _raw(port, "Action: Login\r\nActionID: 1\r\nUsername: callpop\r\nSecret: nope\r\n\r\n",
                         "Action: Ping\r\nActionID: 2\r\n\r\n")
        assert bad.startswith(b"Asterisk Call Manager/11.0.0\r\n")
        assert b"Response: Error\r\nActionID: 1\r\nMessage: Authentication failed\r\n\r\n" in bad
        assert b"Pong" not in bad  # the connection was closed after the failed login
        await pbx.place_call("incoming_answered", client=CLIENT, agent="101")
        await asyncio.sleep(0.05)
        ok = await _raw(port, "Action: Login\r\nActionID: 1\r\nUsername: callpop\r\nSecret: s3cret\r\n"
                              "Events: call\r\n\r\n",
                        "Action: Ping\r\nActionID: 2\r\n\r\n", "Action: Frobnicate\r\nActionID: 3\r\n\r\n",
                        "Action: CoreShowChannels\r\nActionID: 4\r\n\r\n", "Action: Logoff\r\nActionID: 5\r\n\r\n")
        text = ok.decode()
        assert "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted" in text
        assert "Response: Success\r\nActionID: 2\r\nPing: Pong\r\nTimestamp: " in text
        assert ("Response: Error\r\nActionID: 3\r\nMessage: Invalid/unknown command: Frobnicate. "
                "Use Action: ListCommands to show available commands.\r\n\r\n") in text
        assert text.count("Event: CoreShowChannel\r\nActionID: 4\r\n") == 2
        assert "ListItems: 2\r\n" in text and "CallerIDName: <unknown>" in text
        assert "Response: Goodbye\r\nActionID: 5" in text
        assert "FullyBooted" not in text and "VarSet" not in text  # Events: call only
    finally:
        await pbx.stop()


async def _listening_port(stream: asyncio.StreamReader) -> tuple[int, str]:
    """The port a ``callpop simulate --port 0`` bound, from its log; and the log so far."""
    said = ""
    while line := (await stream.readline()).decode(errors="replace"):
        said += line
        found = re.search(r"AMI listening on 127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1)), said
    raise AssertionError(f"the simulator exited without listening:\n{said}")


async def test_callpop_simulate_serves_calls(tmp_path: Any) -> None:
    sink = Collector()
    # port 0: the simulator binds a free port itself and logs it (no port to lose meanwhile)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callpop", "simulate", "--port", "0", "--interval", "0.2",
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(30):
            port, said = await _listening_port(proc.stderr)
        conn = AmiConnection(ami_settings(port, secret=""), tracker(), sink)
        async with running(conn, login=False):
            await sink.wait_for(lambda ev: any(isinstance(e, Ringing) for e in ev), within=10)
    finally:
        proc.terminate()
        _, err = await proc.communicate()
    log = said + err.decode()
    assert "placed:" in log


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_a_recorded_simulator_stream_replays_to_the_same_calls(scenario: str) -> None:
    """What the daemon saw live, `callpop replay` sees in the bytes the PBX wrote (every
    event class, VarSet and Newexten included): the simulator's streams are fixtures too."""
    from callpop.settings import Settings
    from callpop.telephony.replay import replay_bytes

    pbx = SimulatedPbx("callpop", "s3cret", AGENTS, speed=50.0, rng_seed=11)
    port = await pbx.start()
    written: list[bytes] = [b"Asterisk Call Manager/11.0.0\r\n"]
    pbx.on_write = lambda _name, data: written.append(data)
    sink = Collector()
    try:
        async with running(AmiConnection(ami_settings(port), tracker(), sink)):
            lid = await pbx.place_call(scenario, client="89161234567", agent=["103", "104", "105", "106"],
                                       caller_name="ООО Ромашка")
            await sink.wait_for(lambda ev: any(isinstance(e, Ended) and e.call == lid for e in ev))
    finally:
        await pbx.stop()
    replayed = [e.as_dict() for e in replay_bytes(b"".join(written), Settings())]
    live = sink.dicts()
    for d in replayed + live:
        d.pop("talk_seconds", None)  # a raw stream has no clock
    assert replayed == live


async def test_the_pbx_keeps_a_cdr_row_per_dial_segment_as_asterisk_would(tmp_path: Any) -> None:
    """With a CDR backend the simulator writes, for each call played to its end, one row per
    dial segment with Asterisk's columns: Party A the trunk (inbound) or the agent (outbound),
    its Uniqueid the call's Linkedid, the ring group's losers NO ANSWER, a queue's rows
    answered at their start (the queue answered the caller), a caller who hung up NO ANSWER."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from callpop.simulator.cdr import CdrWriter, cdr_table

    url = f"sqlite+aiosqlite:///{tmp_path / 'master.db'}"
    pbx = SimulatedPbx("callpop", "s", ("101", "102", "103", "104"), speed=4.0, rng_seed=3)
    pbx.cdr = CdrWriter(url)
    await pbx.cdr.start()
    await pbx.start("127.0.0.1", 0)
    keys = {name: await pbx.place_call(name, client="+79160000001", agent="101", talk_seconds=4)
            for name in ("incoming_answered", "ring_group", "outbound", "caller_hangup", "queue_answered",
                         "blind_transfer")}
    await wait_until(lambda: not pbx._calls, within=30)
    await pbx.cdr.close()
    await pbx.stop()
    engine = create_async_engine(url)
    table = cdr_table()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table).order_by(table.c.sequence))).mappings().all()
    await engine.dispose()
    by_call: dict[str, list[Any]] = {}
    for r in rows:
        assert r["uniqueid"] == r["linkedid"] and 0 <= r["billsec"] <= r["duration"]
        by_call.setdefault(r["linkedid"], []).append(r)

    def shape(name: str) -> list[tuple[str, str, str]]:
        return sorted((r["channel"].split("-")[0], r["dstchannel"].split("-")[0], r["disposition"])
                      for r in by_call.get(keys[name], []))

    assert shape("incoming_answered") == [("PJSIP/carrier", "PJSIP/101", "ANSWERED")]
    group = shape("ring_group")  # 101 answers; the two other members the PBX picked rang
    assert len(group) == 3 and {a for a, _, _ in group} == {"PJSIP/carrier"}
    assert [(b, d) for _, b, d in group if d == "ANSWERED"] == [("PJSIP/101", "ANSWERED")]
    assert shape("outbound") == [("PJSIP/101", "PJSIP/carrier", "ANSWERED")]
    assert shape("caller_hangup") == [("PJSIP/carrier", "PJSIP/101", "NO ANSWER")]
    queue = [r for r in by_call[keys["queue_answered"]] if r["disposition"] == "ANSWERED"]
    assert len(queue) == 1 and queue[0]["billsec"] == queue[0]["duration"] and queue[0]["lastapp"] == "Queue"
    assert keys["blind_transfer"] not in by_call  # transfers' segments are not modelled
