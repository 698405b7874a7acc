"""Pop latency: from the PBX writing DialBegin to the agent's tab holding the card.

    .venv/bin/python bench/pop_latency.py                       # 1,000 agents, 1M clients
    .venv/bin/python bench/pop_latency.py --agents 50 --directory 10000 --seconds 3   # quick

Three processes, so no side measures itself:

* this one: the simulated PBX (a real AMI server on loopback). It places inbound calls from
  known directory numbers (round-robin over the agents) at 1, 10 and 100 calls/s and notes,
  with ``SimulatedPbx.on_write``, when the DialBegin bytes of each (call, agent) are written;
* the daemon: ``create_app`` with the AMI connection to that PBX, the real tracker,
  pipeline (lookup, journal, contacts) and hub, on an SQLite copy of the 1M-client
  directory that bench/lookup.py generates (bench/out/lookup-1000000.db; generated if
  missing), read once into the OS page cache before the run. A ticker task records the
  event loop's oversleep (its lag) all along;
* the clients: one logged-in websocket per agent (1,000), noting when each
  ``call.ringing`` frame arrives, before parsing it.

Times are ``time.time()`` (one system clock for all processes). ``--trace`` also times each
step inside the daemon (AMI read, lookup start, the directory read start/end and its CPU, card
published, websocket send) by wrapping those functions, and names the event loop's steps
over 5 ms: ``stages_ms`` per rate, p50/p99/max of each step (it costs a little: use it to
see where the time goes, not for the figures). ``gc_max_cpu_ms`` (the collector's CPU
time) and ``daemon_involuntary_switches`` (times the kernel took the CPU away from the
daemon) tell a stall of the daemon's own from the machine's. The bench employees get a
cheap argon2 hash (the hash carries its own cost), so 1,000 real logins take seconds.
``--login-flood 50`` adds a fourth process posting wrong passwords for unknown logins at 50
per second while the calls run (each one an argon2 check of full cost unless throttled;
``--unthrottled`` turns the daemon's login throttle off, so every one is checked): the pops'
p99 and the loop lag then show whether password checks stall the daemon.
Last line: {"clients": 1000, "directory_clients": 1000000, "rates": {"1": {"p50_ms", "p99_ms",
"max_ms", "pops", "missing"}, ...}, "loop_lag_max_ms": ...}. Target at 100 calls/s: p99 <= 10 ms
and loop lag < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import re
import shutil
import sqlite3
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

OUT = ROOT / "bench" / "out"
SECRET = "bench-ami-secret"
PASSWORD = "bench-password"
FIRST_EXTENSION = 5000
RATES = (1, 10, 100)
_DIAL = re.compile(rb"DestChannel: PJSIP/(\d+)-.*?\r\nDestLinkedid: ([^\r]+)\r\n", re.S)


# --- the directory ----------------------------------------------------------------------------


def _bench_hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


def prepare_database(size: int, agents: int) -> str:
    """A copy of bench/lookup.py's directory with one employee per agent; returns the URL."""
    import lookup as lookup_bench  # bench/lookup.py

    source = OUT / f"lookup-{size}.db"
    if not lookup_bench._complete_sqlite(source, size):
        print(f"generating the {size:,}-client directory (bench/lookup.py)...", file=sys.stderr)
        asyncio.run(lookup_bench.prepare_sqlite(size))
    target = OUT / f"pop-latency-{size}.db"
    if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
        print(f"copying {source.name} -> {target.name}", file=sys.stderr)
        src = sqlite3.connect(source)
        src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        src.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(source, target)
    url = f"sqlite+aiosqlite:///{target}"
    from callpop.store.db import upgrade

    asyncio.run(upgrade(url))
    conn = sqlite3.connect(target)
    try:
        password_hash = _bench_hash()
        with conn:
            for i in range(agents):
                login, ext = f"bench{i:04d}", str(FIRST_EXTENSION + i)
                conn.execute("INSERT OR IGNORE INTO employees (name, login, password_hash, role, active, created_at) "
                             "VALUES (?, ?, ?, 'manager', 1, '2026-01-01 00:00:00.000000')",
                             (f"Агент {i}", login, password_hash))
                conn.execute("UPDATE employees SET password_hash = ? WHERE login = ?", (password_hash, login))
                emp = conn.execute("SELECT id FROM employees WHERE login = ?", (login,)).fetchone()[0]
                conn.execute("INSERT OR REPLACE INTO extensions (extension, employee_id) VALUES (?, ?)", (ext, emp))
    finally:
        conn.close()
    _warm_page_cache(target)
    return url


def _warm_page_cache(path: Path) -> None:
    """Read the database once so it is in the OS page cache, as on a server that has been
    answering calls all day. Right after a reboot the first pops wait for the disk
    (bench/README.md: p50 79 ms at the first rate, before this); that is a deployment
    matter (RAM, or database.sqlite_reads_in_thread), not what this bench measures."""
    started = time.perf_counter()
    buf = bytearray(8 << 20)
    size = 0
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            with open(name, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    size += n
    print(f"read {size / 1e6:,.0f} MB of database into the page cache in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)


# --- the daemon process -----------------------------------------------------------------------


def daemon_process(db_url: str, ami_port: int, ctl: Connection, profile: str | None = None,
                   trace: bool = False, reads_in_thread: bool = True, web: dict[str, Any] | None = None) -> None:
    asyncio.run(_daemon(db_url, ami_port, ctl, profile, trace, reads_in_thread, web or {}))


def _install_trace(app: Any) -> dict[str, dict[str, float]]:
    """--trace: time.time() at each stage of a pop inside the daemon, per call. The AMI read
    time is the Ringing event's ``at`` (the reader stamps every read); the rest is noted by
    wrapping the pipeline's card step, the hub's publish and the websocket send."""
    from aiohttp import web

    from callpop.pipeline import PIPELINE
    from callpop.store import directory

    marks: dict[str, dict[str, float]] = {}
    by_number: dict[str, dict[str, float]] = {}
    pipeline = app[PIPELINE]
    card = pipeline._card
    lookup_sync = directory.lookup_sync

    def traced_lookup_sync(conn: Any, key: Any, *a: Any, **kw: Any) -> Any:
        m = by_number.setdefault(key.raw, {})
        m.setdefault("read_start", time.time())
        cpu = time.thread_time()
        try:
            return lookup_sync(conn, key, *a, **kw)
        finally:
            m.setdefault("read_end", time.time())
            m.setdefault("read_cpu_ms", (time.thread_time() - cpu) * 1000)

    directory.lookup_sync = traced_lookup_sync
    from sqlalchemy.engine import Engine

    engine_connect = Engine.connect

    def traced_connect(self: Any) -> Any:
        """Slow checkouts of a reader connection (a new one opened, or waiting for one)."""
        started = time.perf_counter()
        conn = engine_connect(self)
        took = time.perf_counter() - started
        if took > 0.002 and self.dialect.driver == "pysqlite":  # the lookup's reader engine
            marks.setdefault("_connect", {})[f"{time.time():.3f}"] = round(took * 1000, 2)
        return conn

    Engine.connect = traced_connect  # type: ignore[method-assign]

    async def traced_card(state: Any) -> Any:
        m = marks.setdefault(state.call, {})
        m.setdefault("lookup_start", time.time())
        try:
            return await card(state)
        finally:
            m.setdefault("lookup_end", time.time())
            m.update(by_number.pop(state.number or "", {}))

    pipeline._card = traced_card
    hub = pipeline._hub
    publish = hub.publish

    def traced_publish(message: dict[str, Any], **kw: Any) -> int:
        if message.get("type") == "call.ringing":
            m = marks.setdefault(message["call"], {})
            m.setdefault("ami_read", message.get("at") or 0.0)
            m.setdefault("publish", time.time())
        queued: int = publish(message, **kw)
        return queued

    hub.publish = traced_publish
    send_str = web.WebSocketResponse.send_str

    async def traced_send(self: Any, data: str, *a: Any, **kw: Any) -> None:
        ringing = data.startswith('{"type":"call.ringing"')
        if ringing:
            call = json.loads(data)["call"]
            marks.setdefault(call, {}).setdefault("send_start", time.time())
        await send_str(self, data, *a, **kw)
        if ringing:
            marks[call].setdefault("sent", time.time())

    web.WebSocketResponse.send_str = traced_send  # type: ignore[method-assign]
    run = asyncio.events.Handle._run

    def timed_run(handle: Any) -> None:
        """The loop's slow steps, named (asyncio debug mode costs far more than it measures)."""
        started = time.perf_counter()
        run(handle)
        took = time.perf_counter() - started
        if took > 0.005:
            owner = getattr(handle._callback, "__self__", None)
            if isinstance(owner, asyncio.Task):
                coro = owner.get_coro()
                name = f"task {owner.get_name()} {getattr(coro, '__qualname__', coro)}"
            else:
                name = repr(handle)
            marks.setdefault("_slow", {})[f"{time.time():.3f} {name}"[:200]] = round(took * 1000, 2)

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]
    return marks


async def _daemon(db_url: str, ami_port: int, ctl: Connection, profile: str | None, trace: bool,
                  reads_in_thread: bool, web_settings: dict[str, Any]) -> None:
    from aiohttp import web

    from callpop.app import create_app
    from callpop.pipeline import PIPELINE
    from callpop.server.keys import AMI, HUB
    from callpop.settings_file import settings_from_mapping

    settings = settings_from_mapping({
        "database": {"url": db_url, "sqlite_reads_in_thread": reads_in_thread},
        "ami": {"host": "127.0.0.1", "port": ami_port, "secret": SECRET},
        "web": {"host": "127.0.0.1", "port": 0, "secret_key": "bench-secret-key-of-at-least-32-bytes",
                **web_settings},
        "logging": {"level": "WARNING"},
    }, source="bench", environ={})
    import logging

    logging.basicConfig(level=logging.WARNING, format="daemon %(levelname)s %(name)s: %(message)s")
    lags: list[tuple[float, float]] = []
    app = create_app(settings, pace_gc=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    for _ in range(500):
        if app[AMI] is not None and app[AMI].state == "logged_in":  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    ticker = asyncio.create_task(_tick(lags))
    marks = _install_trace(app) if trace else {}
    import gc

    gc_pauses: list[float] = []
    gc_cpu: list[float] = []
    gc_started: list[float] = []
    gc_started_cpu: list[float] = []
    gc_by_gen: dict[int, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started.append(time.perf_counter())
            gc_started_cpu.append(time.thread_time())
        elif gc_started:
            took = time.perf_counter() - gc_started.pop()
            gc_cpu.append(time.thread_time() - gc_started_cpu.pop())
            gc_pauses.append(took)
            gen = info["generation"]
            gc_by_gen[gen] = max(gc_by_gen.get(gen, 0.0), took)

    gc.callbacks.append(on_gc)
    ctl.send({"port": port, "ami": app[AMI].state if app[AMI] is not None else "off"})  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, ctl.recv)  # "go": the clients are connected, calls start
    import resource

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    switches0 = usage0.ru_nivcsw
    if os.environ.get("CALLPOP_BENCH_SLOW"):
        loop.set_debug(True)  # logs every callback slower than this, with its task
        loop.slow_callback_duration = float(os.environ["CALLPOP_BENCH_SLOW"])
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    await loop.run_in_executor(None, ctl.recv)  # "stop"
    ticker.cancel()
    if prof is not None and profile:
        prof.disable()
        prof.dump_stats(profile)
    pipeline = app[PIPELINE]
    ctl.send({"lags": lags, "push": app[HUB].stats(), "lookups": pipeline.lookups,
              "gc_max_ms": round(max(gc_pauses, default=0.0) * 1000, 2), "gc_runs": len(gc_pauses),
              "gc_max_cpu_ms": round(max(gc_cpu, default=0.0) * 1000, 2),
              "gc_cpu_ms_total": round(sum(gc_cpu) * 1000, 1),
              "gc_p99_ms": round(_pct(gc_pauses, 0.99) * 1000, 2) if gc_pauses else 0.0,
              "involuntary_switches": resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches0,
              "cpu_s": _cpu_since(usage0),
              "gc_max_ms_by_generation": {g: round(t * 1000, 2) for g, t in sorted(gc_by_gen.items())},
              "gc_tracked_objects": len(gc.get_objects()),
              "gc_top_types": __import__("collections").Counter(
                  type(o).__name__ for o in gc.get_objects()).most_common(12),
              "journal_batches": pipeline.journal.batches, "journal_failed": pipeline.journal.failed,
              "marks": marks})
    await runner.cleanup()


def _steal_ms() -> float:
    """CPU time the hypervisor gave to other guests so far (all CPUs, /proc/stat), in ms:
    its growth during a run says how much of the tail the host took."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _cpu_since(before: Any) -> float:
    """CPU seconds (user + system, all threads) this process used since *before*."""
    import resource

    now = resource.getrusage(resource.RUSAGE_SELF)
    return round(now.ru_utime + now.ru_stime - before.ru_utime - before.ru_stime, 2)


async def _tick(lags: list[tuple[float, float]], interval: float = 0.005) -> None:
    """The loop's lag: how much later than asked each short sleep wakes up."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval
        await asyncio.sleep(interval)
        lags.append((time.time(), max(0.0, loop.time() - asked)))


# --- the clients process ----------------------------------------------------------------------


def clients_process(base: str, agents: int, ctl: Connection) -> None:
    asyncio.run(_clients(base, agents, ctl))


async def _login(session: Any, base: str, login: str) -> str:
    async with session.get(f"{base}/login") as page:
        token = page.headers["X-CSRF-Token"]
        anon = page.cookies["callpop_session"].value
    async with session.post(f"{base}/login", data={"login": login, "password": PASSWORD, "csrf_token": token},
                            headers={"Cookie": f"callpop_session={anon}"}, allow_redirects=False) as resp:
        if resp.status != 302:
            raise RuntimeError(f"login {login}: HTTP {resp.status}")
        return str(resp.cookies["callpop_session"].value)


async def _clients(base: str, agents: int, ctl: Connection) -> None:
    import aiohttp

    received: dict[str, float] = {}
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    gate = asyncio.Semaphore(16)

    async def connect(i: int) -> None:
        async with gate:
            cookie = await _login(session, base, f"bench{i:04d}")
            ws = await session.ws_connect(f"{base}/ws", headers={"Cookie": f"callpop_session={cookie}"},
                                          heartbeat=None, autoping=True)
        sockets.append(ws)
        async for msg in ws:
            now = time.time()
            if msg.type is aiohttp.WSMsgType.TEXT and msg.data.startswith('{"type":"call.ringing"'):
                data = json.loads(msg.data)
                received[f"{data['call']}|{data['agent']}"] = now

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
        tasks = [asyncio.create_task(connect(i)) for i in range(agents)]
        while len(sockets) < agents:
            await asyncio.sleep(0.05)
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            if failed:
                ctl.send({"error": repr(failed[0].exception())})
                return
        # The clients are the measuring instrument: their own GC pauses must not count as
        # pop latency (real browsers are other machines), so none run while measuring.
        import gc

        gc.collect()
        gc.freeze()
        gc.disable()
        lags: list[tuple[float, float]] = []
        ticker = asyncio.create_task(_tick(lags))
        ctl.send({"connected": len(sockets)})
        import resource

        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, ctl.recv)  # "stop"
        ticker.cancel()
        gc.enable()
        ctl.send({"received": received, "still_open": sum(not ws.closed for ws in sockets),
                  "lag_max_ms": round(max((lag for _, lag in lags), default=0.0) * 1000, 2),
                  "cpu_s": _cpu_since(usage0)})
        # Close only once the daemon has reported its hub counters: closing first made
        # 1-5 tabs look "detached by the server" in earlier runs.
        await loop.run_in_executor(None, ctl.recv)  # "close"
        for ws in sockets:
            await ws.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the login flood process -----------------------------------------------------------------


def flood_process(base: str, rate: float, ctl: Connection) -> None:
    asyncio.run(_flood(base, rate, ctl))


async def _flood(base: str, rate: float, ctl: Connection) -> None:
    """Wrong passwords for unknown logins at *rate* per second (each one a full-cost argon2
    check of the dummy hash unless the daemon throttles it) until told to stop."""
    import collections

    import aiohttp

    answers: collections.Counter[int] = collections.Counter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.run_in_executor(None, lambda: (ctl.recv(), loop.call_soon_threadsafe(stop.set)))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.get(f"{base}/login") as page:
            token = page.headers["X-CSRF-Token"]
            cookie = f"callpop_session={page.cookies['callpop_session'].value}"

        async def attempt(i: int) -> None:
            try:
                async with session.post(f"{base}/login", data={"login": f"intruder{i}", "password": f"guess{i}",
                                                               "csrf_token": token},
                                        headers={"Cookie": cookie}, allow_redirects=False) as resp:
                    answers[resp.status] += 1
            except aiohttp.ClientError:
                answers[0] += 1

        pending: set[asyncio.Task[None]] = set()
        t0, i = loop.time(), 0
        while not stop.is_set():
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            task = asyncio.create_task(attempt(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        await asyncio.gather(*pending, return_exceptions=True)
    ctl.send({"sent": i, "answers": {str(k): v for k, v in sorted(answers.items())},
              "seconds": round(loop.time() - t0, 1)})


# --- the PBX and the run ----------------------------------------------------------------------


_STAGES = ("dial", "ami_read", "lookup_start", "read_start", "read_end", "lookup_end", "publish",
           "send_start", "sent", "received")


def _stages(phases: list[tuple[int, float, float, list[str]]], dial: dict[str, float],
            received: dict[str, float], marks: dict[str, dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    """--trace: p50/p99/max of each step of the pop, per rate (ms between consecutive marks)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for rate, _start, _end, keys in phases:
        steps: dict[str, list[float]] = {}
        for key in keys:
            m = dict(marks.get(key.split("|")[0], {}))
            if key in dial:
                m["dial"] = dial[key]
            if key in received:
                m["received"] = received[key]
            if not all(s in m for s in _STAGES):
                continue
            for a, b in itertools.pairwise(_STAGES):
                steps.setdefault(f"{a}->{b}", []).append((m[b] - m[a]) * 1000)
            if "read_cpu_ms" in m:
                steps.setdefault("lookup_read_cpu", []).append(m["read_cpu_ms"])
        out[str(rate)] = {name: {"p50": round(statistics.median(v), 2), "p99": round(_pct(v, 0.99), 2),
                                 "max": round(max(v), 2)} for name, v in steps.items()}
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run_rates(pbx: Any, dial: dict[str, float], agents: int, size: int, seconds: float,
                     rates: tuple[int, ...]) -> list[tuple[int, float, float, list[str]]]:
    import lookup as lookup_bench

    loop = asyncio.get_running_loop()
    phases: list[tuple[int, float, float, list[str]]] = []
    n = 0
    for rate in rates:
        count = max(10, int(rate * seconds))
        keys: list[str] = []
        start_wall, t0 = time.time(), loop.time()
        for i in range(count):
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            agent = str(FIRST_EXTENSION + n % agents)
            client = 1 + (n * 104729) % size
            call = await pbx.place_call("incoming_answered", client=lookup_bench.number_of(client), agent=agent,
                                        caller_name=f"Клиент {client}")
            keys.append(f"{call}|{agent}")
            n += 1
        await asyncio.sleep(2.0)  # let the last pops arrive
        phases.append((rate, start_wall, time.time(), keys))
        print(f"  {rate:>3} calls/s: {count} calls placed", file=sys.stderr)
    return phases


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from callpop.simulator.pbx import SimulatedPbx

    url = await asyncio.to_thread(prepare_database, args.directory, args.agents)
    agents = [str(FIRST_EXTENSION + i) for i in range(args.agents)]
    pbx = SimulatedPbx("callpop", SECRET, agents=agents, speed=1.0, rng_seed=1)
    dial: dict[str, float] = {}

    def on_write(name: str, data: bytes) -> None:
        if name == "DialBegin":
            found = _DIAL.search(data)
            if found:
                dial.setdefault(f"{found.group(2).decode()}|{found.group(1).decode()}", time.time())

    pbx.on_write = on_write
    ami_port = await pbx.start("127.0.0.1", 0)
    ctx = mp.get_context("spawn")
    d_parent, d_child = ctx.Pipe()
    web: dict[str, Any] = {"login_failures_per_ip": 0, "login_failures_per_login": 0} if args.unthrottled else {}
    daemon = ctx.Process(target=daemon_process, daemon=True,
                         args=(url, ami_port, d_child, args.profile, args.trace, args.reads_in_thread, web))
    daemon.start()
    c_parent, c_child = ctx.Pipe()
    f_parent, f_child = ctx.Pipe()
    clients: Any = None
    flood: Any = None
    flooded: dict[str, Any] = {}
    try:
        ready = await asyncio.wait_for(asyncio.to_thread(d_parent.recv), 120)
        base = f"http://127.0.0.1:{ready['port']}"
        print(f"daemon up on {base}, AMI {ready['ami']}", file=sys.stderr)
        clients = ctx.Process(target=clients_process, args=(base, args.agents, c_child), daemon=True)
        clients.start()
        t0 = time.time()
        up = await asyncio.wait_for(asyncio.to_thread(c_parent.recv), 300)
        if "error" in up:
            raise RuntimeError(f"clients failed: {up['error']}")
        print(f"{up['connected']} websockets logged in and connected in {time.time() - t0:.1f} s", file=sys.stderr)
        d_parent.send("go")
        if args.login_flood:
            flood = ctx.Process(target=flood_process, args=(base, args.login_flood, f_child), daemon=True)
            flood.start()
        import resource

        pbx_usage0 = resource.getrusage(resource.RUSAGE_SELF)
        steal0 = _steal_ms()
        wanted = tuple(args.rates)
        phases = await asyncio.wait_for(_run_rates(pbx, dial, args.agents, args.directory, args.seconds, wanted),
                                        60 + args.seconds * len(wanted) * 3)
        pbx_cpu = _cpu_since(pbx_usage0)
        steal = round(_steal_ms() - steal0)
        if flood is not None:
            f_parent.send("stop")
            flooded = await asyncio.wait_for(asyncio.to_thread(f_parent.recv), 60)
        c_parent.send("stop")
        got = await asyncio.wait_for(asyncio.to_thread(c_parent.recv), 60)
        d_parent.send("stop")
        stats = await asyncio.wait_for(asyncio.to_thread(d_parent.recv), 60)
        c_parent.send("close")
    finally:
        await pbx.stop()
        for proc in (flood, clients, daemon):
            if proc is not None:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
    received: dict[str, float] = got["received"]
    rates: dict[str, dict[str, float | int]] = {}
    for rate, _start, _end, keys in phases:
        lat = [(received[k] - dial[k]) * 1000 for k in keys if k in received and k in dial]
        missing = sum(1 for k in keys if k not in received)
        rates[str(rate)] = {"p50_ms": round(statistics.median(lat), 2) if lat else -1,
                            "p99_ms": round(_pct(lat, 0.99), 2) if lat else -1,
                            "max_ms": round(max(lat), 2) if lat else -1, "pops": len(lat), "missing": missing}
    stages: dict[str, dict[str, dict[str, float]]] = {}
    if args.trace:
        slow = stats["marks"].pop("_slow", {})
        connects = stats["marks"].pop("_connect", {})
        if connects:
            print(f"slow reader checkouts (ms): {sorted(connects.values(), reverse=True)[:20]}", file=sys.stderr)
        stages = _stages(phases, dial, received, stats["marks"])
        for rate, _start, _end, keys in phases[:1]:
            print(f"{rate} calls/s, in call order (ms): " + " ".join(
                f"{(received[k] - dial[k]) * 1000:.1f}" for k in keys[:20] if k in received and k in dial),
                file=sys.stderr)
        for name, took in sorted(slow.items(), key=lambda kv: -kv[1])[:25]:
            print(f"slow step {took:7.2f} ms {name}", file=sys.stderr)
    run_start, run_end = phases[0][1], phases[-1][2]
    lags = [lag for at, lag in stats["lags"] if run_start <= at <= run_end]
    return {"clients": args.agents, "directory_clients": args.directory, "rates": rates,
            "loop_lag_max_ms": round(max(lags) * 1000, 2) if lags else -1,
            "connections_at_end": got["still_open"],
            "clients_loop_lag_max_ms": got["lag_max_ms"], "push": stats["push"], "lookups": stats["lookups"],
            "gc_max_ms": stats["gc_max_ms"], "gc_max_cpu_ms": stats["gc_max_cpu_ms"],
            "gc_cpu_ms_total": stats["gc_cpu_ms_total"], "gc_p99_ms": stats["gc_p99_ms"], "gc_runs": stats["gc_runs"],
            "daemon_involuntary_switches": stats["involuntary_switches"],
            "cpu_s": {"daemon": stats["cpu_s"], "clients": got["cpu_s"], "pbx": pbx_cpu,
                      "wall": round(phases[-1][2] - phases[0][1], 2)},
            "host_steal_ms": steal,
            "gc_max_ms_by_generation": stats["gc_max_ms_by_generation"],
            "gc_tracked_objects": stats["gc_tracked_objects"], "gc_top_types": stats["gc_top_types"],
            "journal_batches": stats["journal_batches"], "journal_failed": stats["journal_failed"],
            **({"stages_ms": stages} if stages else {}),
            "reads_in_thread": args.reads_in_thread,
            **({"login_flood": {"rate": args.login_flood, "throttled": not args.unthrottled, **flooded}}
               if args.login_flood else {}),
            "seconds_per_rate": args.seconds, "cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000, help="websocket clients, one per agent")
    parser.add_argument("--directory", type=int, default=1_000_000, help="clients in the directory")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of calls at each rate")
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES), help="calls per second")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the daemon process into FILE")
    parser.add_argument("--trace", action="store_true",
                        help="time each step inside the daemon (AMI read, lookup, publish, send): stages_ms")
    parser.add_argument("--reads-on-loop", dest="reads_in_thread", action="store_false",
                        help="the daemon with database.sqlite_reads_in_thread = false (lookups on the event loop)")
    parser.add_argument("--login-flood", type=float, default=0.0, metavar="RATE",
                        help="failed logins per second (unknown logins, wrong passwords) while the calls run")
    parser.add_argument("--unthrottled", action="store_true",
                        help="the daemon with the login throttle off: every flood attempt costs an argon2 check")
    args = parser.parse_args()
    result = asyncio.run(_main(args))
    print(f"{'rate':>6} {'pops':>6} {'missing':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}", file=sys.stderr)
    for rate, r in result["rates"].items():
        print(f"{rate:>6} {r['pops']:>6} {r['missing']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}",
              file=sys.stderr)
    print(f"event loop lag max: {result['loop_lag_max_ms']} ms", file=sys.stderr)
    if "login_flood" in result:
        print(f"login flood: {result['login_flood']}", file=sys.stderr)
    for rate, steps in result.get("stages_ms", {}).items():
        print(f"{rate:>6} calls/s, p50/p99 ms: " + ", ".join(
            f"{name} {v['p50']}/{v['p99']}" for name, v in steps.items()), file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
