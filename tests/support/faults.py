"""The fault harness: the daemon (``callpop run``, a real process) against the simulated PBX
(a real AMI server on loopback in this process) and a real database, a burst of calls,
one fault injected, and the journal compared with what the PBX really played.

Used by tests/test_faults.py (small, counts asserted) and bench/faults.py (the full table
with recovery times, in docs/reliability.md). The simulator knows each call's truth: when
it started, when the client and the first agent were bridged and when that talk ended,
from its template's steps; a PBX that crashes ends its calls at the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from callpop.settings import DatabaseSettings
from callpop.simulator.cdr import CdrWriter
from callpop.simulator.pbx import SimulatedPbx
from callpop.store.db import Database, open_database
from tests.support.ami_reads import Heard, SentLog, bytes_read
from tests.support.fault_desks import DESK_PASSWORD, Desks
from tests.support.ports import PortHold, taken, unbound_port

AGENTS = ("101", "102", "103", "104")
SECRET = "fault-secret"
ROOT = Path(__file__).resolve().parent.parent.parent
LISTENING = "callpop listening on"  # callpop/app.py logs it once its web port is bound
PORT_ATTEMPTS = 5


async def spawn_daemon(settings_for: Callable[[int], Path], log: Path, env: dict[str, str], cwd: Path,
                       ready: Callable[[], bool] = lambda: True,
                       within: float = 60.0) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``callpop run`` with the settings ``settings_for(web port)`` writes, output
    appended to *log*; returns the process and its web port once it listens there and
    *ready* holds. The port cannot be handed over bound (tests/support/ports.py): one taken
    before the daemon bound it makes the daemon exit, and it is started again on another."""
    for _ in range(PORT_ATTEMPTS):
        port = unbound_port()
        run_env = {**env, "CALLPOP_SETTINGS": str(settings_for(port))}
        offset = _size(log)
        with log.open("ab") as out:
            process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the daemon runs on its own
                [sys.executable, "-m", "callpop", "run"], cwd=cwd, env=run_env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + within
        while True:
            said = _since(log, offset)
            if LISTENING in said and ready():
                return process, port
            if process.poll() is not None:
                if taken(said):
                    break  # another start, on another port
                raise AssertionError(f"daemon exited ({process.returncode}) while starting:\n{said[-3000:]}")
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(f"daemon not ready within {within} s; its log:\n{said[-3000:]}")
            await asyncio.sleep(0.02)
    raise AssertionError(f"the daemon's web port was taken {PORT_ATTEMPTS} times in a row")


def _size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def _since(log: Path, offset: int) -> str:
    if not log.exists():
        return ""
    with log.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


@dataclass
class Truth:
    """One call as the PBX played it (epoch seconds)."""

    key: str
    scenario: str
    client: str
    agent: str
    start: float
    answer: float | None
    talk_end: float | None
    end: float

    def cut(self, at: float) -> None:
        """The PBX died at *at*: the call ended there."""
        if self.end > at:
            self.end = at
            if self.answer is not None and self.answer >= at:
                self.answer = self.talk_end = None
            elif self.talk_end is not None and self.talk_end > at:
                self.talk_end = at

    @property
    def talk(self) -> int:
        return 0 if self.answer is None or self.talk_end is None else int(self.talk_end - self.answer)


def truth_of(pbx: SimulatedPbx, key: str, scenario: str, client: str, agent: str) -> Truth:
    """Read the call's timing from the simulator right after it was placed."""
    call = pbx._calls[key]  # the harness reads the PBX's own plan: it is the ground truth
    offset = time.time() - asyncio.get_running_loop().time()
    steps = call.template.steps

    def at(i: int) -> float:
        return offset + call.start + call.delay(i, steps[i].at) / pbx.speed

    span = call.template.talk_span
    answer = at(span[0]) if span else None
    talk_end = at(span[1]) if span else None
    return Truth(key, scenario, client, agent, at(0), answer, talk_end, at(len(steps) - 1))


class DbProxy:
    """A TCP relay in front of PostgreSQL that can be cut (the database "unavailable" to
    the daemon: connections refused and open ones reset) without stopping the server the
    other tests use. Its port is held while it is cut (tests/support/ports.py); ``close``
    releases it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._hold = PortHold()
        self.listen_port = self._hold.port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.listen_port, reuse_port=True)

    async def close(self) -> None:
        await self.cut()
        self._hold.close()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


@dataclass
class Plan:
    calls: int = 100
    spread: float = 2.5  # seconds over which the burst is placed
    long_talk: tuple[float, float] = (5.0, 7.0)
    short_talk: tuple[float, float] = (0.3, 1.0)
    short_share: float = 0.2
    min_talk: int = 3
    downtime: float = 1.0  # daemon killed / PBX away for this long
    db_downtime: float = 3.0  # the database away for this long
    fault_at: float = 2.0  # seconds into the burst
    resets: int = 10
    seed: int = 7
    # the PBX keeps CDR rows (callpop/simulator/cdr.py) and the daemon reconciles from them
    cdr: bool = False


SCENARIO_MIX = (("incoming_answered", 6), ("ring_group", 1), ("outbound", 1), ("caller_hangup", 1))


@dataclass
class Run:
    """A daemon process, its PBX and its database, and what was played."""

    db_url: str
    tmp: Path
    plan: Plan
    pbx: SimulatedPbx = field(init=False)
    pbx_port: int = 0
    daemon: subprocess.Popen[bytes] | None = None
    truths: dict[str, Truth] = field(default_factory=dict)
    spool: Path = field(init=False)
    proxy: DbProxy | None = None
    daemon_url: str = ""
    log: Path = field(init=False)
    marks: dict[str, float] = field(default_factory=dict)
    web_port: int = 0
    # (epoch from, to) of each PBX link outage: from the drop or silence to the re-login
    link_down: list[tuple[float, float]] = field(default_factory=list)
    # the PBX's CDR store (plan.cdr): an SQLite file beside a SQLite journal (as
    # cdr_sqlite3_custom keeps one), a ``cdr`` table in the journal's PostgreSQL database
    cdr_url: str = ""
    # the PBX's port, kept while it is down (a crashed PBX comes back on it)
    pbx_hold: PortHold | None = None
    sent: SentLog = field(default_factory=SentLog)  # what the PBX sent each connection

    def __post_init__(self) -> None:
        self.spool = self.tmp / "journal-spool.db"
        self.log = self.tmp / "daemon.log"
        self.daemon_url = self.db_url
        if self.plan.cdr:
            self.cdr_url = (f"sqlite+aiosqlite:///{self.tmp / 'asterisk-cdr.db'}" if self.db_url.startswith("sqlite")
                            else self.db_url)

    # --- set-up -------------------------------------------------------------------------

    async def seed(self, db: Database) -> None:
        """Employees for the agents (managers who can log in to a desk), one regular client per call."""
        from callpop.accounts import hash_password
        from callpop.phones import phone_key
        from callpop.store.models import Client, ClientPhone, Employee, Extension

        password = hash_password(DESK_PASSWORD)
        async with db.sessions() as session:
            for ext in AGENTS:
                emp = Employee(login=f"agent{ext}", name=f"Agent {ext}", role="manager", password_hash=password)
                session.add(emp)
                await session.flush()
                session.add(Extension(extension=ext, employee_id=emp.id))
            for n in range(self.plan.calls + 10):
                number = self.client(n)
                key = phone_key(number)
                client = Client(name=f"Client {n}", status="regular")
                session.add(client)
                await session.flush()
                session.add(ClientPhone(client_id=client.id, raw=number, e164=key.e164, tail10=key.tail10))
            await session.commit()

    @staticmethod
    def client(n: int) -> str:
        return f"+7916{n:07d}"

    def settings_file(self, web_port: int, *, spool: Path | None = None, name: str = "settings.toml") -> Path:
        """The daemon's settings; *spool* and *name*: another instance's own (tests/support/instances.py)."""
        path = self.tmp / name
        path.write_text(f"""
[ami]
host = "127.0.0.1"
port = {self.pbx_port}
secret = "{SECRET}"
ping_interval = 0.3
pong_timeout = 0.3
reconnect_min = 0.05
reconnect_max = 0.3

[database]
url = "{self.daemon_url}"

[journal]
spool_path = "{spool or self.spool}"
write_timeout = 3.0
retry_interval = 0.2
heartbeat_interval = 0.1

[web]
host = "127.0.0.1"
port = {web_port}

[kpi]
min_talk_seconds = {self.plan.min_talk}
one_per_client_per_day = false

[logging]
level = "INFO"
""" + (f"""
[cdr]
url = "{self.cdr_url}"
wait_after_end = 0.3
give_up_after = 300.0
interval = 0.3
timeout = 5.0
""" if self.plan.cdr else ""), encoding="utf-8")
        return path

    async def start_pbx(self) -> None:
        """Start the PBX, again on the same port after a crash (kept meanwhile: ``pbx_hold``)."""
        if self.pbx_hold is None:
            self.pbx_hold = PortHold()
        self.pbx = SimulatedPbx("callpop", SECRET, AGENTS, rng_seed=self.plan.seed)
        self.pbx.on_sent = self.sent
        if self.plan.cdr:
            self.pbx.cdr = CdrWriter(self.cdr_url)
            await self.pbx.cdr.start()
        self.pbx_port = await self.pbx.start("127.0.0.1", self.pbx_hold.port, reuse_port=True)

    async def stop_pbx(self) -> None:
        await self.pbx.stop()
        if self.pbx.cdr is not None:
            await self.pbx.cdr.close()

    async def start_daemon(self) -> float:
        """Start ``callpop run``; returns seconds until it logged in to the PBX."""
        started = time.monotonic()
        logins = len(self.pbx.logins)
        login: list[float] = []

        def logged_in() -> bool:
            if not login and len(self.pbx.logins) > logins and self.pbx.clients > 0:
                login.append(time.monotonic())
            return bool(login)

        env = dict(os.environ)
        env.pop("CALLPOP_DATABASE_URL", None)
        self.daemon, self.web_port = await spawn_daemon(self.settings_file, self.log, env, self.tmp, logged_in)
        return login[0] - started

    async def close(self) -> None:
        """Stop the daemon, the PBX and the database relay; release their ports."""
        await self.stop_daemon()
        await self.stop_pbx()
        if self.proxy is not None:
            await self.proxy.close()
        if self.pbx_hold is not None:
            self.pbx_hold.close()

    def kill_daemon(self) -> Heard | None:
        """SIGKILL; returns what the daemon had heard of the PBX's calls by then (the bytes
        it had read: tests/support/ami_reads.py), None if it was not logged in once."""
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGSTOP)  # frozen: it reads nothing more
        sessions = [s for s in self.pbx._sessions if s.logged_in]
        heard = None
        if len(sessions) == 1:
            peer = sessions[0].peer
            heard = self.sent.heard(peer, bytes_read(peer, f"127.0.0.1:{self.pbx_port}"))
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait()
        return heard

    async def stop_daemon(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        self.daemon.send_signal(signal.SIGTERM)
        for _ in range(300):
            if self.daemon.poll() is not None:
                return
            await asyncio.sleep(0.05)
        self.daemon.kill()
        self.daemon.wait()

    async def until(self, pred: Callable[[], bool], within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not pred():
            if time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                raise AssertionError(f"timed out waiting for {what}; daemon log tail:\n{tail}")
            if self.daemon is not None and self.daemon.poll() is not None and what != "daemon stop":
                raise AssertionError(f"daemon exited ({self.daemon.returncode}) waiting for {what}:\n"
                                     + self.log.read_text(errors="replace")[-3000:])
            await asyncio.sleep(0.02)

    # --- the burst ----------------------------------------------------------------------

    async def burst(self, fault: Callable[[], Awaitable[None]] | None, count: int | None = None,
                    first: int = 0) -> None:
        """Place the calls, spread over ``plan.spread`` s; *fault* runs ``plan.fault_at`` s in."""
        plan = self.plan
        rng = random.Random(plan.seed + first)
        names = [n for n, _ in SCENARIO_MIX]
        weights = [w for _, w in SCENARIO_MIX]
        count = plan.calls if count is None else count
        fault_task = None
        if fault is not None:
            async def later() -> None:
                await asyncio.sleep(plan.fault_at)
                await fault()
            fault_task = asyncio.create_task(later())
        gap = plan.spread / max(1, count)
        for n in range(first, first + count):
            scenario = rng.choices(names, weights)[0]
            agent = AGENTS[n % len(AGENTS)]
            short = rng.random() < plan.short_share
            talk = rng.uniform(*(plan.short_talk if short else plan.long_talk))
            client = self.client(n)
            key = await self.pbx.place_call(scenario, client=client, agent=agent, talk_seconds=talk)
            self.truths[key] = truth_of(self.pbx, key, scenario, client, agent)
            await asyncio.sleep(gap)
        if fault_task is not None:
            await fault_task

    async def played_out(self) -> None:
        """Until the PBX has played every call (and a little more for the journal)."""
        await self.until(lambda: not self.pbx._calls, 120, "the calls to end")

    async def settled(self, within: float = 60.0) -> None:
        """Until the daemon has written its spool back and closed the rows nobody follows:
        on a loaded machine a restarted daemon may log in only after the PBX played every
        call, and stopping it then would leave its spool for a next start that never comes.
        Gives up after *within* s (the verdict then counts what is left)."""
        await self.until(lambda: spool_count(self.spool) == 0, within, "the spool to be written")
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            db = await open_database(DatabaseSettings(url=self.db_url))
            try:
                async with db.sessions() as session:
                    still_open = (await session.execute(text(
                        "SELECT count(*) FROM calls WHERE ended_at IS NULL"))).scalar_one()
            finally:
                await db.close()
            if not still_open:
                return
            await asyncio.sleep(0.2)

    async def reconciled(self, within: float = 120.0) -> None:
        """With a CDR store: until no row is left uncertain whose call has CDR rows (the
        daemon's reconciler put them right; gives up after *within* s, the verdict then
        counts what is left)."""
        assert self.pbx.cdr is not None
        await self.pbx.cdr.flush()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not await self.uncertain_with_cdr():
                return
            await asyncio.sleep(0.2)

    async def uncertain_with_cdr(self) -> int:
        """Rows still uncertain (answer or end unseen) whose call has CDR rows."""
        db = await open_database(DatabaseSettings(url=self.db_url))
        try:
            async with db.sessions() as session:
                keys = [r[0] for r in (await session.execute(text(
                    "SELECT call_key FROM calls WHERE end_unseen OR answer_unseen"))).all()]
        finally:
            await db.close()
        if not keys:
            return 0
        cdr = await open_database(DatabaseSettings(url=self.cdr_url), check_schema=False)
        try:
            async with cdr.sessions() as session:
                known = {r[0] for r in (await session.execute(text("SELECT DISTINCT linkedid FROM cdr"))).all()}
        finally:
            await cdr.close()
        return sum(1 for k in keys if k in known)

    # --- the verdict ----------------------------------------------------------------------

    async def rows(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[str, bool]]], int]:
        url = self.db_url
        db = await open_database(DatabaseSettings(url=url))
        try:
            async with db.sessions() as session:
                calls = {r[0]: {"outcome": r[1], "talk": r[2], "ended": r[3], "unseen": r[4], "started": r[5],
                                "answered": r[6], "answer_unseen": bool(r[7]), "source": r[8], "client": r[9]}
                         for r in (await session.execute(text(
                             "SELECT call_key, outcome, talk_seconds, ended_at, end_unseen, started_at, "
                             "answered_at, answer_unseen, times_source, client_id FROM calls"))).all()}
                contacts: dict[str, list[tuple[str, bool]]] = {}
                for key, ext, counted in (await session.execute(text(
                        "SELECT c.call_key, x.extension, k.counted FROM contacts k JOIN calls c ON c.id = k.call_id "
                        "JOIN extensions x ON x.employee_id = k.employee_id"))).all():
                    contacts.setdefault(key, []).append((ext, bool(counted)))
                bad_times = (await session.execute(text(
                    "SELECT count(*) FROM calls WHERE answered_at < started_at OR ended_at < started_at"))
                ).scalar_one()
        finally:
            await db.close()
        return calls, contacts, int(bad_times)

    async def verdict(self, *, down: tuple[float, float] | None = None, heard: Heard | None = None,
                      alive_until: float | None = None) -> dict[str, Any]:
        """Counts against the truth. *down*: the daemon's downtime (epoch from, to): only
        calls wholly inside it may be missing or lose their contact. *heard*: what the
        daemon had read of the PBX when it was killed, and *alive_until* its last heartbeat
        then (the last moment it can have known a call was still on): a call's events it
        had not read are as unknown to it as the ones sent while it was down. Without them
        the daemon is taken to have read everything sent before *down* began."""
        calls, contacts, bad_times = await self.rows()
        expected_contacts = {k for k, t in self.truths.items() if t.talk >= self.plan.min_talk}
        counted = {k for k, cs in contacts.items() if any(c for _, c in cs)}
        doubled = sum(1 for cs in contacts.values() if sum(1 for _, c in cs if c) > 1)
        if down is not None and heard is None:
            heard = Heard(-1, rang={k for k, t in self.truths.items() if t.start < down[0]},
                          answered={k: t.answer for k, t in self.truths.items()
                                    if t.answer is not None and t.answer < down[0]},
                          ended={k for k, t in self.truths.items() if t.end <= down[0]})
        until = alive_until if alive_until is not None else down[0] if down is not None else 0.0
        back = down[1] if down is not None else 0.0
        # nothing of it read, over before the daemon was back: wholly unknown to callpop
        inside = set() if heard is None else {
            k for k, t in self.truths.items() if k not in heard.rang and t.end <= back}
        # played wholly while the PBX link was down: AMI replays nothing, the next listing
        # shows only what is still up (on a loaded machine a re-login can take a second)
        unfollowed = {k for k, t in self.truths.items() if any(a <= t.start and t.end <= b for a, b in self.link_down)}
        inside |= unfollowed
        # its end not read, over before the daemon was back, and less than min_talk of its
        # talk read before the daemon's last heartbeat (or its answer not read): how long
        # it talked cannot be known (docs/reliability.md)
        unknowable = set() if heard is None else {
            k for k, t in self.truths.items()
            if k not in heard.ended and t.end <= back and t.talk >= self.plan.min_talk
            and (k not in heard.answered or until - heard.answered[k] < self.plan.min_talk)}
        # answered while the daemon or its PBX link was down and still on when it was back:
        # the talk is sure only from when callpop saw it up (the row's answered_at: the
        # listing), the answer's moment is not listed (docs/reliability.md)
        unknowable |= {k for k, t in self.truths.items()
                       if k in calls and calls[k]["answer_unseen"] and t.answer is not None
                       and t.talk_end is not None and t.answer <= _epoch(calls[k]["answered"])
                       and t.talk_end - _epoch(calls[k]["answered"]) < self.plan.min_talk <= t.talk}
        # a call missing from the journal must be one the daemon had read neither the
        # answer nor the end of, over before it was back
        missing_knowable = {k for k, t in self.truths.items() if k not in calls and k not in unfollowed and not (
            heard is not None and k not in heard.ended and k not in heard.answered and t.end <= back)}
        since = down[0] if down is not None else 0.0
        lost = expected_contacts - counted
        errors = [abs(int(calls[k]["talk"]) - t.talk) for k, t in self.truths.items()
                  if k in calls and t.answer is not None and calls[k]["outcome"] == "answered"]
        return {
            "calls": len(self.truths),
            "recorded": sum(1 for k in self.truths if k in calls),
            "missing_knowable": len(missing_knowable),
            "missing_detail": sorted((t.scenario, round(t.start - since, 2), round((t.answer or 0) - since, 2),
                                      round(t.end - since, 2))
                                     for k, t in self.truths.items() if k in missing_knowable)[:8],
            "open_rows": sum(1 for c in calls.values() if c["ended"] is None or c["outcome"] is None),
            "foreign_rows": sum(1 for k in calls if k not in self.truths),
            "end_unseen": sum(1 for c in calls.values() if c["unseen"]),
            # rows put right from the PBX's CDR, and rows still uncertain (answer or end unseen)
            "from_cdr": sum(1 for c in calls.values() if c["source"] == "cdr"),
            "uncertain_left": sum(1 for c in calls.values() if c["unseen"] or c["answer_unseen"]),
            # every call is with a seeded client: an answered row without one has no contact
            "answered_without_client": sum(1 for c in calls.values()
                                           if c["outcome"] == "answered" and c["client"] is None),
            "contacts_expected": len(expected_contacts),
            "contacts_counted": len(counted & set(self.truths)),
            "lost": len(lost),
            "lost_outside_downtime": len(lost - inside),
            "lost_unknowable": len((lost - inside) & unknowable),
            "lost_knowable": len(lost - inside - unknowable),
            "extra": len(counted - expected_contacts),
            "doubled": doubled,
            "inside_downtime": len(inside),
            "unfollowed": len(unfollowed),
            "talk_error_max": max(errors, default=0),
            "talk_error_median": statistics.median(errors) if errors else 0,
            "talk_error_over_1s": sum(1 for e in errors if e > 1),
            "times_out_of_order": bad_times,
        }


def _epoch(moment: Any) -> float:
    """A timestamp column as epoch seconds (SQLite gives naive UTC datetimes or text)."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return float(moment.timestamp())


def last_beat(path: Path) -> float | None:
    """The daemon's last heartbeat in its spool file (callpop/journal_spool.py)."""
    if not path.exists():
        return None
    con = sqlite3.connect(path, timeout=5)
    try:
        row = con.execute("SELECT value FROM state WHERE key = 'heartbeat'").fetchone()
        return None if row is None else float(row[0])
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def spool_count(path: Path) -> int:
    if not path.exists():
        return 0
    con = sqlite3.connect(path, timeout=5)
    try:
        return int(con.execute("SELECT count(*) FROM jobs").fetchone()[0])
    except sqlite3.OperationalError as exc:
        print("spool count:", exc, file=sys.stderr)
        return 0
    finally:
        con.close()


# --- the faults ---------------------------------------------------------------------------


async def daemon_killed(run: Run) -> dict[str, Any]:
    """SIGKILL mid-burst, ``downtime`` s down, restarted."""
    down: dict[str, float] = {}
    known: dict[str, Heard | None] = {}

    async def fault() -> None:
        down["from"] = time.time()
        known["heard"] = run.kill_daemon()
        beat = last_beat(run.spool)
        if beat is not None:
            down["beat"] = beat
        await asyncio.sleep(run.plan.downtime)
        down["recovery"] = await run.start_daemon()
        down["to"] = time.time()  # down until it follows calls again

    await run.burst(fault)
    await run.played_out()
    await run.settled()
    if run.plan.cdr:
        await run.reconciled()
    await asyncio.sleep(0.5)
    await run.stop_daemon()
    result = await run.verdict(down=(down["from"], down["to"]), heard=known["heard"], alive_until=down.get("beat"))
    result["recovery_s"] = round(down["recovery"], 2)
    heard = known["heard"]
    result["unread_at_kill_bytes"] = heard.unread if heard is not None else None
    return result


async def pbx_resets(run: Run) -> dict[str, Any]:
    """The AMI connection reset ``resets`` times during the burst (the PBX stays up)."""
    recoveries: list[float] = []

    async def fault() -> None:
        for _ in range(run.plan.resets):
            logins = len(run.pbx.logins)
            t0, dropped = time.monotonic(), time.time()
            await run.pbx.drop_clients()
            await run.until(lambda n=logins: len(run.pbx.logins) > n, 30, "re-login")  # type: ignore[misc]
            recoveries.append(time.monotonic() - t0)
            run.link_down.append((dropped, time.time()))
            await asyncio.sleep(0.1)

    await run.burst(fault)
    await run.played_out()
    await asyncio.sleep(0.5)
    await run.stop_daemon()
    result = await run.verdict()
    result["recovery_s"] = round(statistics.median(recoveries), 3)
    result["recovery_max_s"] = round(max(recoveries), 3)
    return result


async def pbx_crashed(run: Run) -> dict[str, Any]:
    """The PBX dies (its calls with it), comes back ``downtime`` s later with a new banner
    and no channels; the second half of the burst is played on the new one."""
    half = run.plan.calls // 2
    await run.burst(None, count=half)
    crash = time.time()
    old = run.pbx
    for truth in run.truths.values():
        truth.cut(crash)
    old._calls.clear()  # kill -9: nothing more is played, no hangups are sent
    await old.stop()
    await asyncio.sleep(run.plan.downtime)
    logins_before = 0
    t0 = time.monotonic()
    await run.start_pbx()
    await run.until(lambda: len(run.pbx.logins) > logins_before, 30, "re-login to the new PBX")
    recovery = time.monotonic() - t0
    await run.burst(None, count=run.plan.calls - half, first=half)
    await run.played_out()
    await asyncio.sleep(0.5)
    await run.stop_daemon()
    result = await run.verdict()
    result["recovery_s"] = round(recovery, 3)
    return result


async def half_open(run: Run) -> dict[str, Any]:
    """The PBX's side of the connection goes silent (nothing read, nothing sent: a
    half-open TCP connection); the daemon must notice (no Pong) and reconnect."""
    rec: dict[str, float] = {}

    async def fault() -> None:
        logins = len(run.pbx.logins)
        t0, silenced = time.monotonic(), time.time()
        for s in list(run.pbx._sessions):
            s.write = lambda data: None  # type: ignore[method-assign]
            s.data_received = lambda data: None  # type: ignore[method-assign]
        await run.until(lambda: len(run.pbx.logins) > logins, 30, "re-login after half-open")
        rec["recovery"] = time.monotonic() - t0
        run.link_down.append((silenced, time.time()))

    await run.burst(fault)
    await run.played_out()
    await asyncio.sleep(0.5)
    await run.stop_daemon()
    result = await run.verdict()
    result["recovery_s"] = round(rec["recovery"], 3)
    return result


DbOutage = Callable[[Run], tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]]


def sqlite_lock(run: Run) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """SQLite "unavailable": another process holds the write lock (the daemon's writes get
    ``database is locked``); the tests run as root, so a read-only file would not stop it."""
    path = run.db_url.split("///", 1)[1]
    holder: dict[str, sqlite3.Connection] = {}

    async def down() -> None:
        con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        con.execute("BEGIN EXCLUSIVE")
        holder["con"] = con

    async def up() -> None:
        con = holder.pop("con")
        con.execute("ROLLBACK")
        con.close()

    return down, up


def pg_proxy_cut(run: Run) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    assert run.proxy is not None
    proxy = run.proxy

    async def down() -> None:
        await proxy.cut()

    async def up() -> None:
        await proxy.start()

    return down, up


async def open_desks(run: Run) -> Desks:
    """Every agent's manager logged in with a desk tab on the running daemon."""
    desks = Desks(f"http://127.0.0.1:{run.web_port}")
    try:
        await desks.open({ext: f"agent{ext}" for ext in AGENTS})
    except BaseException:
        await desks.close()
        raise
    return desks


async def database_away(run: Run, outage: tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]],
                        desks: Desks | None = None) -> dict[str, Any]:
    """The database unavailable for ``downtime`` s mid-burst: pops go on, the journal
    spools and writes everything once it is back. With *desks*: how many of the calls
    placed while it was away popped on their agent's desk before it was back."""
    down, up = outage
    rec: dict[str, float] = {}
    popped: set[tuple[str, str]] = set()

    async def fault() -> None:
        rec["down_at"] = time.time()
        await down()
        peak = 0
        until = time.monotonic() + run.plan.db_downtime
        while time.monotonic() < until:
            await asyncio.sleep(0.2)
            peak = max(peak, spool_count(run.spool))
        rec["spooled_peak"] = peak
        rec["up_at"] = time.time()
        if desks is not None:
            popped.update(desks.popped())
        await up()
        t0 = time.monotonic()
        await asyncio.sleep(0.05)
        await run.until(lambda: spool_count(run.spool) == 0, 60, "the spool to be written")
        rec["recovery"] = time.monotonic() - t0

    await run.burst(fault)
    await run.played_out()
    await run.until(lambda: spool_count(run.spool) == 0, 60, "the spool to be written")
    await asyncio.sleep(0.5)
    await run.stop_daemon()
    result = await run.verdict()
    result["recovery_s"] = round(rec["recovery"], 3)
    result["spooled_at_restore"] = int(rec["spooled_peak"])
    if desks is not None:
        away = [t for t in run.truths.values() if rec["down_at"] <= t.start < rec["up_at"]]
        result["placed_while_away"] = len(away)
        result["popped_while_away"] = sum(1 for t in away if (t.agent, t.key) in popped)
        result["popped_in_all"] = sum(1 for t in run.truths.values() if (t.agent, t.key) in desks.popped())
    return result
