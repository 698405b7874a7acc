"""The simulated PBX: a real AMI server over TCP that plays calls recorded from Asterisk.

It answers as Asterisk 22 does (banner ``Asterisk Call Manager/11.0.0``, CRLF lines, a
blank line after each message): Login (plain, or MD5 after Challenge; a wrong secret gets
``Authentication failed`` and the connection is closed), Challenge, Ping, CoreShowChannels
(the channels up right now, then CoreShowChannelsComplete), Originate (queued, then the
click-to-call plays with an OriginateResponse), Logoff, and ``Invalid/unknown command``.
Events are filtered by the ``Events:`` classes the client logged in with, like Asterisk.

Calls are the templates of :mod:`callpop.simulator.scenario` with fresh ids, the
chosen client and agents and the capture's own timing (divided by ``speed``). Each step of
a call (events that happened together) is rendered once, encoded once per distinct event
mask and written to every client: no per-event sleeps, nothing per call that grows with
the number of calls or agents. ``callpop demo`` connects to it when no Asterisk is
configured; the tests use it to drive the real panoramisk connection over a socket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any

from callpop.settings import Settings
from callpop.simulator.cdr import CdrWriter, cdr_rows
from callpop.simulator.scenario import (
    ACTION_LINE,
    AGENT,
    BRIDGE,
    CHAN,
    CLASS_BITS,
    CLIENT,
    NAME,
    SCENARIOS,
    UID,
    Template,
    load_template,
)
from callpop.simulator.session import AmiSession

__all__ = ["SimulatedPbx", "demo_talk_seconds", "main"]

log = logging.getLogger(__name__)


DEMO_WEIGHTS = {"incoming_answered": 36, "incoming_noanswer": 6, "caller_hangup": 6, "ring_group": 10,
                "queue_answered": 12, "queue_abandoned": 4, "outbound": 12, "click_to_call": 4,
                "blind_transfer": 5, "attended_transfer": 5}


@dataclass(slots=True)
class _Call:
    template: Template
    values: list[str]
    start: float
    agents: tuple[str, ...]
    linkedid: str
    next_step: int = 0
    shown: int = -1
    stretch_from: int = 1 << 30  # steps from this index on are played ``stretch`` seconds later
    stretch: float = 0.0

    def delay(self, index: int, at: float) -> float:
        """Capture time of a step or channel (by its step index), talk stretched."""
        return at + self.stretch if index >= self.stretch_from else at


@dataclass
class _Ids:
    """Fresh identifiers: Uniqueids as Asterisk makes them (epoch.seq, never going back)."""

    seq: int = 0
    epoch: int = 0
    chan: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def uid(self) -> str:
        self.epoch = max(self.epoch, int(time.time()))
        self.seq += 1
        return f"{self.epoch}.{self.seq}"

    def channel_suffix(self) -> str:
        self.chan += 1
        return f"{self.chan:08x}"

    def bridge(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


class SimulatedPbx:
    """An AMI server playing realistic calls; see the module docstring."""

    def __init__(self, username: str = "callpop", secret: str = "",
                 agents: Sequence[str] = ("101", "102", "103", "104"), speed: float = 1.0,
                 rng_seed: int | None = None, *, md5: bool = True) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.username = username
        self.secret = secret
        self.md5 = md5  # False: answer Challenge with an error (an AMI proxy without MD5)
        self.agents = [str(a) for a in agents]
        self.speed = speed
        self.rng = random.Random(rng_seed)
        self.frozen = False
        self.on_write: Callable[[str, bytes], None] | None = None
        # every byte a client's connection is sent, in order: (its peer "host:port", the bytes);
        # a test tells from it what a client can have read (tests/support/ami_reads.py)
        self.on_sent: Callable[[str, bytes], None] | None = None
        self.calls_placed = 0
        self.logins: list[tuple[str, bool]] = []  # (md5 | plain, accepted): what clients did
        self.originates: list[dict[str, Any]] = []  # every Originate action as received (tests read it)
        self.cdr: CdrWriter | None = None  # a CDR backend: rows for each call played to its end
        self._cdr_sequence = 0
        self._ids = _Ids(rng=random.Random(rng_seed))
        self._templates: dict[str, Template] = {}
        self._sessions: set[AmiSession] = set()
        self._calls: dict[str, _Call] = {}
        self._busy: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._started = time.monotonic()

    # --- server ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, ssl: SSLContext | None = None,
                    reuse_port: bool = False) -> int:
        """Listen; returns the bound port (``port=0`` picks a free one). With *ssl* it
        speaks AMI over TLS, as Asterisk does on its ``tlsbindport``. *reuse_port*: bind
        with ``SO_REUSEPORT``, beside a socket that keeps the port while this PBX is down
        (a PBX that crashes and comes back on the same port, tests/support/ports.py).

        The templates are compiled here, once, so placing a call never stalls the loop."""
        for name in SCENARIOS:
            self.template(name)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: AmiSession(self), host, port, ssl=ssl,
                                                reuse_port=reuse_port or None)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("simulated PBX: AMI listening on %s:%d (user %r, %d agents, speed x%g)",
                 host, bound, self.username, len(self.agents), self.speed)
        return bound

    async def stop(self) -> None:
        for call in list(self._calls.values()):
            self._finish(call)
        if self._server is not None:
            self._server.close()
            await self.drop_clients()
            await self._server.wait_closed()
            self._server = None

    @property
    def clients(self) -> int:
        """AMI clients connected now."""
        return len(self._sessions)

    def freeze(self) -> None:
        """Behave like a hung Asterisk: TCP stays up, nothing is read, answered or sent."""
        self.frozen = True
        log.warning("simulated PBX: frozen")

    def unfreeze(self) -> None:
        self.frozen = False
        log.warning("simulated PBX: unfrozen")
        for s in list(self._sessions):
            s.thaw()

    async def announce_shutdown(self) -> None:
        """``core restart now``: a Shutdown event to every client, then the connections close."""
        data = (b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n")
        for s in list(self._sessions):
            if s.logged_in and s.mask & CLASS_BITS["system"]:
                s.write(data)
            if s.transport is not None:
                s.transport.close()
        await asyncio.sleep(0)

    async def drop_clients(self) -> None:
        """Cut every AMI connection (a network failure, from the clients' side)."""
        for s in list(self._sessions):
            if s.transport is not None:
                s.transport.abort()
        await asyncio.sleep(0)

    # --- calls -----------------------------------------------------------------------------

    def template(self, scenario: str) -> Template:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        tpl = self._templates.get(scenario)
        if tpl is None:
            tpl = self._templates[scenario] = load_template(scenario)
        return tpl

    async def place_call(self, scenario: str, *, client: str, agent: str | Sequence[str],
                         caller_name: str | None = None, talk_seconds: float | None = None) -> str:
        """Start a call; returns its Linkedid, the call id the tracker reports.

        ``agent``: the agent who answers (or dials, for outbound and click-to-call) first,
        then the others in the capture's order (ring group and queue members, the transfer
        target); missing ones are picked at random among ``agents``. ``scenario`` is one of
        ``scenario.SCENARIOS``: incoming_answered, incoming_noanswer, caller_hangup,
        ring_group, queue_answered, queue_abandoned, outbound, click_to_call,
        blind_transfer, attended_transfer.

        ``talk_seconds``: how long, at least, the client and the first agent talk (PBX time,
        divided by ``speed`` like the rest), from the answer to the hangup or transfer; None keeps the
        capture's few seconds. Scenarios nobody answers ignore it.
        """
        agents = (agent,) if isinstance(agent, str) else tuple(agent)
        return self._place(scenario, client=client, agents=agents, caller_name=caller_name, action_id=None,
                           talk_seconds=talk_seconds)

    def _place(self, scenario: str, *, client: str, agents: tuple[str, ...], caller_name: str | None,
               action_id: str | None, talk_seconds: float | None = None) -> str:
        tpl = self.template(scenario)
        roles = len(tpl.spec.roles)
        chosen = self._complete_agents(list(dict.fromkeys(agents))[:roles], roles, scenario)
        clean = client.replace("\r", "").replace("\n", "")
        name = caller_name.replace("\r", " ").replace("\n", " ") if caller_name else None
        values = self._values(tpl, clean, name, chosen, action_id)
        linkedid = values[tpl.linkedid_slot]
        loop = asyncio.get_running_loop()
        call = _Call(tpl, values, loop.time(), tuple(chosen), linkedid)
        if talk_seconds is not None:
            if not talk_seconds >= 0:
                raise ValueError(f"talk_seconds must be >= 0, got {talk_seconds}")
            if tpl.talk_span is not None:
                start, end = tpl.talk_span
                call.stretch_from = end
                # half a second more: talk time is floored to whole seconds (like billsec)
                call.stretch = max(0.0, talk_seconds + 0.5 - (tpl.steps[end].at - tpl.steps[start].at))
        self._calls[linkedid] = call
        self._busy.update(chosen)
        self.calls_placed += 1
        log.info("simulated PBX: call %s placed: %s, client %s%s, agents %s", linkedid, scenario, clean,
                 f" ({name})" if name else "", ",".join(chosen))
        self._schedule(call)
        return linkedid

    def _complete_agents(self, chosen: list[str], roles: int, scenario: str) -> list[str]:
        """Fill a ring group/queue with other agents: random picks, never a scan of all."""
        for _ in range(8 * roles):
            if len(chosen) >= roles:
                return chosen
            pick = self.rng.choice(self.agents)
            if pick not in chosen:
                chosen.append(pick)
        spare = [a for a in self.agents if a not in chosen]  # a small pool: scan it
        if len(spare) < roles - len(chosen):
            raise ValueError(f"{scenario} needs {roles} agents, only {len(chosen) + len(spare)} known")
        return chosen + self.rng.sample(spare, roles - len(chosen))

    def _values(self, tpl: Template, client: str, name: str | None, agents: Sequence[str],
                action_id: str | None) -> list[str]:
        ids = self._ids
        trunk_form = "".join(ch for ch in client if ch.isdigit()) or client
        values: list[str] = []
        for kind, arg in tpl.slots:
            if kind == UID:
                values.append(ids.uid())
            elif kind == CHAN:
                role = arg[1]
                resource = agents[role] if isinstance(role, int) else role
                values.append(f"PJSIP/{resource}-{ids.channel_suffix()}")
            elif kind == BRIDGE:
                values.append(ids.bridge())
            elif kind == CLIENT:
                values.append(client if arg == 0 else trunk_form)
            elif kind == NAME:
                values.append(name or "<unknown>")
            elif kind == AGENT:
                values.append(agents[arg])
            elif kind == ACTION_LINE:
                values.append(f"ActionID: {action_id}\r\n" if action_id else "")
            else:  # pragma: no cover - the compiler makes no other kinds
                raise AssertionError(kind)
        return values

    def _schedule(self, call: _Call) -> None:
        step = call.template.steps[call.next_step]
        at = call.delay(call.next_step, step.at)
        asyncio.get_running_loop().call_at(call.start + at / self.speed, self._play, call)

    def _play(self, call: _Call) -> None:
        if self._calls.get(call.linkedid) is not call:
            return  # stopped
        steps = call.template.steps
        step = steps[call.next_step]
        call.shown = call.next_step
        call.next_step += 1
        if not self.frozen:
            values = call.values
            texts = [(ev, ev.fmt % tuple([values[i] for i in ev.slots])) for ev in step.events]
            self._broadcast(texts)
        span = call.template.talk_span
        if span is not None and call.shown == span[0] and call.template.spec.group:
            self._busy.subtract(call.agents[1:])  # the members who lost the race hang up
            call.agents = call.agents[:1]
        if call.next_step < len(steps):
            self._schedule(call)
        else:
            if self.cdr is not None:
                loop = asyncio.get_running_loop()
                offset = time.time() - loop.time()
                rows = cdr_rows(call, lambda t: t + offset, self.speed, self._cdr_sequence)
                self._cdr_sequence += len(rows)
                self.cdr.record(rows)
            self._finish(call)

    def _broadcast(self, texts: list[tuple[Any, str]]) -> None:
        by_mask: dict[int, bytes] = {}
        for s in self._sessions:
            if not s.logged_in:
                continue
            data = by_mask.get(s.mask)
            if data is None:
                data = by_mask[s.mask] = "".join(t for ev, t in texts if ev.mask & s.mask).encode("utf-8")
            if data:
                s.write(data)
        hook = self.on_write
        if hook is not None:
            for ev, t in texts:
                hook(ev.name, t.encode("utf-8"))

    def _finish(self, call: _Call) -> None:
        if self._calls.pop(call.linkedid, None) is not None:
            self._busy.subtract(call.agents)

    def _core_show_channels(self, action_id: str | None) -> bytes:
        now = asyncio.get_running_loop().time()
        aid = f"ActionID: {action_id}\r\n" if action_id else ""
        parts: list[str] = []
        for call in self._calls.values():
            if call.shown < 0:
                continue
            v = call.values
            steps = call.template.steps
            stretched_at = steps[call.stretch_from].at if call.stretch_from < len(steps) else float("inf")
            for ch in steps[call.shown].channels:
                created = ch.created_at + call.stretch if ch.created_at >= stretched_at else ch.created_at
                secs = max(0, int(now - call.start - created / self.speed))
                parts.append(
                    f"Event: CoreShowChannel\r\n{aid}" + ch.head % tuple([v[i] for i in ch.head_slots])
                    + f"Duration: {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}\r\n"
                    + ch.tail % tuple([v[i] for i in ch.tail_slots]) + "\r\n")
        parts.append(f"Event: CoreShowChannelsComplete\r\n{aid}EventList: Complete\r\n"
                     f"ListItems: {len(parts)}\r\n\r\n")
        return "".join(parts).encode("utf-8")

    # --- demo ------------------------------------------------------------------------------

    def _free_agents(self, scenario: str) -> tuple[str, ...] | None:
        """Agents for a demo call, all of them off the phone (a real PBX does not ring a
        phone that is talking); None when too few are free: the call waits for a gap."""
        free = [a for a in self.agents if self._busy[a] <= 0]
        roles = len(self.template(scenario).spec.roles)
        if len(free) < roles:
            return None
        return tuple(self.rng.sample(free, roles))

    async def run_demo_calls(self, interval: float, clients: Sequence[tuple[str, str | None]], *,
                             short_share: float = 0.2) -> None:
        """Random realistic calls, one every ~interval seconds, until cancelled.

        Answered calls talk as sales calls do (:func:`demo_talk_seconds`): most long enough
        to count as a KPI contact, a *short_share* of them too short to."""
        if not 0.0 <= short_share <= 1.0:
            raise ValueError(f"short_share must be between 0 and 1, got {short_share}")
        names, weights = list(DEMO_WEIGHTS), list(DEMO_WEIGHTS.values())
        callers = list(clients)
        dialable = [n for n, _ in callers if any(ch.isdigit() for ch in n)] or ["+74950001122"]
        while True:
            scenario = self.rng.choices(names, weights)[0]
            number, name = self.rng.choice(callers)
            agents = self._free_agents(scenario)
            talk = demo_talk_seconds(self.rng, short_share)
            try:
                if agents is None:
                    log.info("simulated PBX: every agent is on the phone, the next demo call waits")
                elif scenario in ("outbound", "click_to_call"):
                    if not any(ch.isdigit() for ch in number):  # nobody dials "anonymous"
                        number = self.rng.choice(dialable)
                    self._place(scenario, client=number, agents=agents, caller_name=None, action_id=None,
                                talk_seconds=talk)
                else:
                    self._place(scenario, client=number, agents=agents, caller_name=name, action_id=None,
                                talk_seconds=talk)
            except ValueError as exc:
                log.warning("simulated PBX: demo call not placed: %s", exc)
            await asyncio.sleep(interval * self.rng.uniform(0.5, 1.5))


def demo_talk_seconds(rng: random.Random, short_share: float) -> float:
    """A talk time for a demo call: with probability *short_share* a short one (5-25 s, under
    the default ``[kpi] min_talk_seconds`` of 30: not a contact), otherwise 35-90 s."""
    if rng.random() < short_share:
        return rng.uniform(5.0, 25.0)
    return rng.uniform(35.0, 90.0)


DEMO_CALLERS: tuple[tuple[str, str | None], ...] = (
    ("+79161234567", "Иван Петров"), ("89031112233", "ООО Ромашка"), ("+74957654321", None),
    ("+79265550101", "Мария Соколова"), ("+79035550202", "<script>alert(1)</script>"),
    ("+442079460958", "London Office"), ("anonymous", "Anonymous"), ("+79857770011", "Алексей"),
)


async def _serve(pbx: SimulatedPbx, port: int, interval: float) -> None:
    await pbx.start("127.0.0.1", port)
    try:
        await pbx.run_demo_calls(interval, DEMO_CALLERS)
    finally:
        await pbx.stop()


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``callpop simulate --port P [--interval S]``."""
    from callpop.logs import setup_logging

    setup_logging(settings.logging)
    interval = args.interval if args.interval is not None else settings.demo.call_interval
    agents = [str(101 + i) for i in range(max(1, settings.demo.managers))]
    pbx = SimulatedPbx(settings.ami.username, settings.ami.secret, agents, rng_seed=settings.demo.seed)
    try:
        asyncio.run(_serve(pbx, args.port, interval))
    except KeyboardInterrupt:
        pass
    return 0
