"""Fan-out latency: a message published on instance A, to a tab on A (local) and to a tab
on instance B (relayed through PostgreSQL LISTEN/NOTIFY), side by side.

    CALLPOP_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:55444/postgres \\
        .venv/bin/python bench/fanout.py                 # 50 messages/s, 6 s per kind
    ... bench/fanout.py --rate 200 --seconds 3           # heavier

Two real applications (``create_app``, fan-out on, no AMI) on a fresh database created on
that server, each on its own port, and one logged-in websocket tab per instance for the
same employee, all in this one process and event loop (so the relayed figure also pays
for sharing the loop with A, the tabs and the sending side). Each message carries
``t0 = perf_counter()`` taken just before ``Hub.publish`` on A; a tab notes
``perf_counter()`` when the frame arrives, before parsing it. Three kinds:

* ``small``: ``kpi_changed`` (~100 bytes);
* ``card``: a ``call.ringing`` with a 2 KB card, relayed inline;
* ``reference``: a ``call.ringing`` whose card is over 8,000 bytes: relayed without it, B
  builds the card with one directory lookup (docs/websocket.md, "Several instances").

Last line: {"small": {"local": {"p50_ms", "p99_ms", "max_ms", "n"}, "relay": {...}}, "card":
..., "reference": ..., "rate", "seconds", "missing", "duplicates", "loadavg_1m"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.pg import pg_admin  # noqa: E402
from tests.support.ports import bound_socket  # noqa: E402

PASSWORD = "bench-password"
NUMBER = "+79161234567"


def _stats(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "n": 0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3), "p99_ms": round(p99 * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3), "n": len(ordered)}


async def _tab(base: str, login: str) -> tuple[Any, Any]:
    import aiohttp

    session = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    form = await session.get("/login")
    token = form.headers["X-CSRF-Token"]
    resp = await session.post("/login", data={"login": login, "password": PASSWORD, "csrf_token": token},
                              allow_redirects=False)
    assert resp.status == 302, await resp.text()
    ws = await session.ws_connect("/ws")
    for _ in range(2):  # hello, snapshot
        await ws.receive()
    return session, ws


async def _read(ws: Any, arrivals: dict[str, float], duplicates: list[str]) -> None:
    import aiohttp

    while True:
        msg = await ws.receive()
        now = time.perf_counter()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return
        data = json.loads(msg.data)
        key = data.get("bench")
        if key is None:
            continue
        if key in arrivals:
            duplicates.append(key)
        else:
            arrivals[key] = now - data["t0"]


async def _until(done: Any, within: float) -> None:
    """Poll *done* every 10 ms for at most *within* seconds (a bench: no event to wait on)."""
    for _ in range(int(within * 100)):
        if done():
            return
        await asyncio.sleep(0.01)


async def run(pg: str, rate: float, seconds: float, spool_dir: str) -> dict[str, Any]:
    from aiohttp import web

    from callpop.accounts import hash_password
    from callpop.app import create_app
    from callpop.fanout import FANOUT
    from callpop.phones import phone_key
    from callpop.server.keys import HUB
    from callpop.settings import DatabaseSettings
    from callpop.settings_file import settings_from_mapping
    from callpop.store.db import open_database, upgrade
    from callpop.store.models import Client, ClientPhone, Employee, Extension, Note

    name = f"callpop_bench_{uuid.uuid4().hex[:10]}"
    await pg_admin(pg, f'CREATE DATABASE "{name}"')
    from sqlalchemy.engine import make_url

    url = make_url(pg).set(database=name).render_as_string(hide_password=False)
    runners: list[web.AppRunner] = []
    sessions: list[Any] = []
    readers: list[asyncio.Task[None]] = []
    try:
        await upgrade(url)
        db = await open_database(DatabaseSettings(url=url))
        async with db.sessions() as s:
            emp = Employee(login="anna", name="Anna", role="manager", password_hash=hash_password(PASSWORD))
            s.add(emp)
            await s.flush()
            s.add(Extension(extension="101", employee_id=emp.id))
            key = phone_key(NUMBER)
            client = Client(name="Иван Петров", status="regular")
            s.add(client)
            await s.flush()
            s.add(ClientPhone(client_id=client.id, raw=NUMBER, e164=key.e164, tail10=key.tail10))
            s.add(Note(client_id=client.id, text="Ж" * 4500, author_id=emp.id))
            await s.commit()
            emp_id = emp.id
        apps = []
        for instance in ("a", "b"):
            sock = bound_socket()  # the instance listens on it: its port is never free for another to take
            port = sock.getsockname()[1]
            settings = settings_from_mapping({
                "database": {"url": url}, "web": {"host": "127.0.0.1", "port": port},
                "push": {"instance_id": instance, "queue_size": 100000},
                "journal": {"spool_path": f"{spool_dir}/{instance}-spool.db"},
                "logging": {"level": "WARNING"}}, source="bench", environ={})
            app = create_app(settings, db=db, start_ami=False)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            runners.append(runner)
            apps.append((app, f"http://127.0.0.1:{port}"))
        await _until(lambda: all(app[FANOUT].state == "listening" for app, _ in apps), 10)
        hub = apps[0][0][HUB]
        local: dict[str, float] = {}
        relay: dict[str, float] = {}
        duplicates: list[str] = []
        for (_app, base), arrivals in zip(apps, (local, relay), strict=True):
            session, ws = await _tab(base, "anna")
            sessions.append(session)
            readers.append(asyncio.create_task(_read(ws, arrivals, duplicates)))
        card = {"call": "c", "direction": "inbound", "caller_name": "Иван",
                "number": {"raw": NUMBER, "e164": NUMBER, "display": "+7 916 123-45-67", "withheld": False},
                "match": "single", "client": {"id": 1, "name": "Иван Петров", "notes": [{"text": "Ж" * 900}]},
                "candidates": [], "offer": None}
        big = {**card, "client": {"id": 1, "name": "Иван Петров", "notes": [{"text": "Ж" * 4500}]}}
        kinds = {"small": lambda i: ({"type": "kpi_changed", "employee_id": emp_id}, {"employee_ids": (emp_id,)}),
                 "card": lambda i: ({"type": "call.ringing", "call": f"card-{i}", "agent": "101",
                                     "direction": "inbound", "card": {**card, "call": f"card-{i}"}},
                                    {"agents": ("101",)}),
                 "reference": lambda i: ({"type": "call.ringing", "call": f"ref-{i}", "agent": "101",
                                          "direction": "inbound", "card": {**big, "call": f"ref-{i}"}},
                                         {"agents": ("101",)})}
        result: dict[str, Any] = {}
        count = max(1, int(rate * seconds))
        for kind, make in kinds.items():
            keys = []
            start = time.perf_counter()
            for i in range(count):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                message, targets = make(i)
                key = f"{kind}-{i}"
                keys.append(key)
                hub.publish({**message, "bench": key, "t0": time.perf_counter()}, **targets)
            await _until(lambda keys=keys: all(k in local and k in relay for k in keys), 10)
            result[kind] = {"local": _stats([local[k] for k in keys if k in local]),
                            "relay": _stats([relay[k] for k in keys if k in relay])}
            result[kind]["missing"] = sum(k not in local for k in keys) + sum(k not in relay for k in keys)
        fanout_b = apps[1][0][FANOUT]
        result.update(rate=rate, seconds=seconds, duplicates=len(duplicates),
                      sent_as_reference=apps[0][0][FANOUT].counters["sent_as_reference"],
                      received=fanout_b.counters["received"], cpus=os.cpu_count(),
                      loadavg_1m=round(os.getloadavg()[0], 2))
        return result
    finally:
        for task in readers:
            task.cancel()
        for session in sessions:
            await session.close()
        for runner in reversed(runners):
            await runner.cleanup()
        if runners:
            await db.close()
        await pg_admin(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second (default 50)")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per kind (default 6)")
    args = parser.parse_args()
    pg = os.environ.get("CALLPOP_BENCH_PG_URL", "")
    if not pg:
        sys.exit("set CALLPOP_BENCH_PG_URL to a PostgreSQL server (a database is created and dropped there)")
    with tempfile.TemporaryDirectory(prefix="callpop-bench-fanout-") as spool_dir:
        result = asyncio.run(run(pg, args.rate, args.seconds, spool_dir))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
