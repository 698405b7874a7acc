"""Several callpop instances, active-active: N ``callpop run`` processes on loopback, one
database, all logged in to the same simulated PBX (which sends every event to each AMI
session), each with its own HTTP port, spool file and log, and the same session secret (a
browser logged in on one is logged in on the others).

Built on the fault harness (tests/support/faults.py: the PBX, the seeded database, the
burst and the verdict against what the PBX played). Used by tests/test_two_instances.py
and bench/faults.py (``--only instance_killed``); a test of the pushes across instances
adds its websocket clients to the same scenario (``Instance.url``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.fault_desks import Desks
from tests.support.faults import AGENTS, Run, spawn_daemon

SECRET_KEY = "instances-share-this-session-key-of-32-bytes"


@dataclass
class Instance:
    """One ``callpop run`` process."""

    name: str
    spool: Path
    log: Path
    web_port: int = 0  # known once it listens
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Instances:
    """N instances of the daemon for *run*'s PBX and database."""

    run: Run
    count: int = 2
    members: list[Instance] = field(default_factory=list)

    def __post_init__(self) -> None:
        tmp = self.run.tmp
        self.members = [Instance(f"i{n}", tmp / f"spool-i{n}.db", tmp / f"daemon-i{n}.log")
                        for n in range(self.count)]

    async def start(self) -> None:
        """Start every instance; return once each listens and is logged in to the PBX."""
        pbx = self.run.pbx
        logins = len(pbx.logins)
        env = {**os.environ, "CALLPOP_SECRET_KEY": SECRET_KEY}
        env.pop("CALLPOP_DATABASE_URL", None)
        for member in self.members:
            def settings(port: int, member: Instance = member) -> Path:
                return self.run.settings_file(port, spool=member.spool, name=f"settings-{member.name}.toml")

            member.process, member.web_port = await spawn_daemon(settings, member.log, env, self.run.tmp)
        await self.until(lambda: len(pbx.logins) >= logins + self.count and pbx.clients >= self.count, 60,
                         f"{self.count} instances logged in to the PBX")

    def kill(self, n: int) -> None:
        """kill -9: no goodbye to the PBX, the database or the browsers."""
        process = self.members[n].process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()

    async def stop(self) -> None:
        """Stop the living instances as systemd would (SIGTERM: calls in flight are journalled)."""
        for member in self.members:
            if member.alive:
                assert member.process is not None
                member.process.send_signal(signal.SIGTERM)
        for member in self.members:
            process = member.process
            if process is None:
                continue
            for _ in range(300):
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                process.kill()
                process.wait()

    async def until(self, pred: Any, within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")
            await asyncio.sleep(0.02)

    def logs(self, tail: int = 2000) -> str:
        return "\n".join(f"--- {m.name} ({m.log}):\n" + m.log.read_text(errors="replace")[-tail:]
                         for m in self.members if m.log.exists())


async def instance_killed(run: Run, instances: Instances, *, desks: bool = False) -> dict[str, Any]:
    """Two instances follow the burst; the first is killed -9 ``plan.fault_at`` s in and
    stays down; the other follows the rest. The journal must be what one instance that
    never failed would have written: every call, once, closed, with its contacts.

    With *desks*, every agent's manager also has a desk tab on each instance from before
    the burst: ``popped_on_survivor`` counts the calls whose agent's tab on the surviving
    instance was sent its ``call.ringing`` (each instance makes the call's messages, and
    before the kill relays them to the other too), ``popped_twice`` the (agent, call)
    ringings a tab, on either instance, was sent more than once."""
    killed: dict[str, float] = {}
    tabs = [Desks(member.url) for member in instances.members] if desks else []
    try:
        for tab in tabs:
            await tab.open({ext: f"agent{ext}" for ext in AGENTS})

        async def fault() -> None:
            killed["at"] = time.time()
            instances.kill(0)

        await run.burst(fault)
        await run.played_out()
        await asyncio.sleep(0.5)
        survivors = [m.name for m in instances.members if m.alive]
        await instances.stop()
    finally:
        for tab in tabs:
            await tab.close()
    result = await run.verdict()
    result["survivors"] = survivors
    result["recovery_s"] = "-"  # nothing to recover: the other instance was following all along
    if tabs:
        alive = [tab for tab, member in zip(tabs, instances.members, strict=True) if member.name in survivors]
        result["popped_on_survivor"] = sum(1 for t in run.truths.values()
                                           if all((t.agent, t.key) in tab.popped() for tab in alive))
        result["popped_twice"] = sum(len(tab.ringing) - len(tab.popped()) for tab in tabs)
    return result
