"""KPI pages under a month of a big sales floor: 200 managers, 100k contacts.
Targets: the earnings page p99 <= 50 ms, the supervisor dashboard p99 <= 200 ms.

    .venv/bin/python bench/kpi.py                        # SQLite (a throwaway file)
    CALLPOP_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:55432/postgres \\
        .venv/bin/python bench/kpi.py                    # ... and PostgreSQL

The data is generated fresh into a temporary SQLite file (PostgreSQL: database
callpop_bench_kpi, dropped afterwards): 200 managers with an extension each, 100 clients
per manager (half regular), 100k contacts (one call each; 80 % counted) spread over the
current month up to now, plus agreements, payments, receivables, missed calls, overdue
promises and a plan per manager and KPI. Pages are timed over HTTP through the real
application (``create_app``, auth middleware, templates), logged in as a manager
(``GET /earnings``) and as a supervisor (``GET /dashboard``, the current month); the
warm-up is excluded. ``dashboard_*`` is the page as supervisors get it (closed days
remembered, see callpop/store/kpi/daycache.py: only the open days are scanned);
``dashboard_cold_*`` clears that memory before each request (the whole month scanned, as
on the first visit after a restart). The last line is JSON: {"earnings_p50_ms",
"earnings_p99_ms", "dashboard_p50_ms", "dashboard_p99_ms", "dashboard_cold_p99_ms", ...}
for SQLite, with the PostgreSQL figures under "postgresql" when it ran. ``--analyze``
gathers PostgreSQL's planner statistics before timing (steady state); without it the
figures depend on whether autovacuum has analyzed the fresh tables yet.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from callpop.accounts import hash_password  # noqa: E402
from callpop.app import create_app  # noqa: E402
from callpop.kpi import KPI_NAMES  # noqa: E402
from callpop.settings import DatabaseSettings, Settings  # noqa: E402
from callpop.settings_file import settings_from_mapping  # noqa: E402
from callpop.store.db import Database, open_database, upgrade  # noqa: E402
from callpop.store.kpi import daycache as kpi_daycache  # noqa: E402
from callpop.store.models import (  # noqa: E402
    Agreement,
    Call,
    CallParticipant,
    Client,
    Contact,
    Employee,
    Extension,
    Payment,
    Plan,
    Promise,
    Receivable,
)

PASSWORD = "bench-password"
HttpClient = TestClient[web.Request, web.Application]
BATCH = 5000


def _spread(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    return start + (end - start) * rng.random()


async def _bulk(db: Database, model: Any, rows: list[dict[str, Any]]) -> None:
    async with db.sessions() as s:
        for i in range(0, len(rows), BATCH):
            await s.execute(insert(model), rows[i:i + BATCH])
        await s.commit()


async def generate(db: Database, settings: Settings, managers: int, contacts: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    tz = ZoneInfo(settings.kpi.timezone)
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(tz).date()
    month = today.replace(day=1)
    start = dt.datetime.combine(month, dt.time(), tz).astimezone(dt.UTC)
    end = max(now - dt.timedelta(seconds=1), start + dt.timedelta(seconds=1))
    pw = hash_password(PASSWORD)
    emps = [{"id": i + 1, "name": f"Менеджер {i + 1:03d}", "login": f"m{i + 1}", "password_hash": pw,
             "role": "manager", "active": True, "created_at": start} for i in range(managers)]
    emps.append({"id": managers + 1, "name": "Supervisor", "login": "sup", "password_hash": pw,
                 "role": "supervisor", "active": True, "created_at": start})
    await _bulk(db, Employee, emps)
    await _bulk(db, Extension, [{"extension": str(100 + i + 1), "employee_id": i + 1} for i in range(managers)])
    per = 100
    clients = [{"id": c + 1, "name": f"Клиент {c + 1}", "responsible_id": c // per + 1,
                "status": "regular" if c % 2 else "new", "status_source": "rule",
                "created_at": _spread(rng, start - dt.timedelta(days=400), end), "updated_at": start}
               for c in range(managers * per)]
    await _bulk(db, Client, clients)
    calls, rows, parts = [], [], []
    for i in range(contacts):
        emp = rng.randrange(managers) + 1
        client_id = (emp - 1) * per + rng.randrange(per) + 1
        when = _spread(rng, start, end)
        calls.append({"id": i + 1, "pbx_id": "main", "call_key": f"b{i}", "direction": "inbound",
                      "client_id": client_id, "started_at": when, "answered_at": when, "outcome": "answered",
                      "talk_seconds": 90, "client_number": None, "caller_name": None, "ended_at": when})
        counted = rng.random() < 0.8
        rows.append({"call_id": i + 1, "employee_id": emp, "client_id": client_id, "direction": "inbound",
                     "started_at": when, "talk_seconds": 90, "counted": counted,
                     "reason": None if counted else "duplicate_day"})
    missed = contacts // 10
    for j in range(missed):
        k = contacts + j + 1
        emp = rng.randrange(managers) + 1
        calls.append({"id": k, "pbx_id": "main", "call_key": f"m{j}", "direction": "inbound", "client_id": None,
                      "started_at": _spread(rng, start, end), "answered_at": None, "outcome": "missed",
                      "talk_seconds": 0, "client_number": "+79990000000", "caller_name": None, "ended_at": None})
        parts.append({"call_id": k, "extension": str(100 + emp), "employee_id": emp, "answered": False,
                      "talk_seconds": 0})
    await _bulk(db, Call, calls)
    await _bulk(db, Contact, rows)
    await _bulk(db, CallParticipant, parts)
    n_clients = managers * per
    agreements = [{"id": a + 1, "client_id": rng.randrange(n_clients) + 1, "title": "deal",
                   "status": rng.choice(("won", "lost", "open", "won")), "made_by_id": rng.randrange(managers) + 1,
                   "currency": "RUB", "created_at": start, "closed_at": _spread(rng, start, end)}
                  for a in range(managers * 50)]
    await _bulk(db, Agreement, agreements)
    await _bulk(db, Payment, [{"client_id": rng.randrange(n_clients) + 1, "amount": Decimal(rng.randrange(1000, 90000)),
                               "currency": "RUB", "paid_at": _spread(rng, start, end), "created_at": start}
                              for _ in range(managers * 100)])
    await _bulk(db, Receivable, [{"client_id": rng.randrange(n_clients) + 1,
                                  "amount": Decimal(rng.randrange(1000, 90000)), "currency": "RUB",
                                  "issued_at": start - dt.timedelta(days=rng.randrange(1, 90)), "settled_at": None}
                                 for _ in range(managers * 100)])
    await _bulk(db, Promise, [{"client_id": rng.randrange(n_clients) + 1, "text": "перезвонить", "status": "open",
                               "made_by_id": rng.randrange(managers) + 1, "created_at": start,
                               "due_at": _spread(rng, start - dt.timedelta(days=30), end + dt.timedelta(days=30))}
                              for _ in range(managers * 50)])
    targets = {"contacts": 500, "collections": 30, "win_rate": 50, "new_vs_regular": 10}
    await _bulk(db, Plan, [{"employee_id": e + 1, "month": month, "kpi": k, "target": Decimal(targets[k]),
                            "updated_at": start} for e in range(managers) for k in KPI_NAMES])


async def _login(server: TestServer, login: str) -> HttpClient:
    client = TestClient(server)
    await client.start_server()
    page = await client.get("/login")
    resp = await client.post("/login", data={"login": login, "password": PASSWORD,
                                             "csrf_token": page.headers["X-CSRF-Token"]}, allow_redirects=False)
    if resp.status != 302:
        raise RuntimeError(f"login as {login} failed: {resp.status}")
    return client


async def _time(client: HttpClient, paths: list[str], warmup: int) -> list[float]:
    times: list[float] = []
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        resp = await client.get(path)
        await resp.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status}")
        if i >= warmup:
            times.append(elapsed)
    return times


def _stats(name: str, times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {f"{name}_p50_ms": round(statistics.median(ordered), 2), f"{name}_p99_ms": round(p99, 2)}


async def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    settings = settings_from_mapping({"database": {"url": url}}, source="bench", environ={})
    await upgrade(url)
    db = await open_database(DatabaseSettings(url=url))
    try:
        t0 = time.perf_counter()
        await generate(db, settings, args.managers, args.contacts)
        print(f"  generated {args.managers} managers, {args.contacts} contacts in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if args.analyze and db.engine.dialect.name == "postgresql":
            # what autovacuum does a minute or so after a bulk load; without it the first
            # requests are planned with no statistics (a payments range guessed at 22 rows)
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")
        server = TestServer(create_app(settings, db=db, start_ami=False))
        await server.start_server()
        clients: list[HttpClient] = []
        try:
            rng = random.Random(1)
            for _ in range(5):
                clients.append(await _login(server, f"m{rng.randrange(args.managers) + 1}"))
            managers = list(clients)
            sup = await _login(server, "sup")
            clients.append(sup)
            earn: list[float] = []
            for i in range(args.earnings + args.warmup):
                earn += await _time(managers[i % len(managers)], ["/earnings"], 0 if i >= args.warmup else 1)
            dash = await _time(sup, ["/dashboard"] * (args.dashboards + 3), 3)
            cold: list[float] = []
            for _ in range(args.dashboards // 2):
                kpi_daycache.clear()  # every closed day read again: the first visit after a restart
                cold += await _time(sup, ["/dashboard"], 0)
            api = await _time(managers[0], ["/api/kpi/me"] * (args.earnings // 2 + 10), 10)
        finally:
            for c in clients:
                await c.close()
            await server.close()
        return {**_stats("earnings", earn), **_stats("dashboard", dash), **_stats("dashboard_cold", cold),
                **_stats("api_kpi_me", api),
                "managers": args.managers, "contacts": args.contacts,
                "load_average": round(os.getloadavg()[0], 2)}
    finally:
        await db.close()


async def _pg_admin(url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    u = make_url(url)
    conn = await asyncpg.connect(user=u.username, password=u.password, host=u.host, port=u.port,
                                 database=u.database or "postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="callpop-bench-kpi-") as tmp:
        print("sqlite:", file=sys.stderr)
        result.update(await measure(f"sqlite+aiosqlite:///{Path(tmp) / 'kpi.db'}", args))
        print(f"  {json.dumps(result)}", file=sys.stderr)
    pg = os.environ.get("CALLPOP_BENCH_PG_URL", "")
    if pg:
        name = f"callpop_bench_kpi_{uuid.uuid4().hex[:8]}"
        await _pg_admin(pg, f'CREATE DATABASE "{name}"')
        try:
            print("postgresql:", file=sys.stderr)
            url = make_url(pg).set(database=name).render_as_string(hide_password=False)
            result["postgresql"] = await measure(url, args)
            print(f"  {json.dumps(result['postgresql'])}", file=sys.stderr)
        finally:
            await _pg_admin(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--managers", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--earnings", type=int, default=500, help="timed GET /earnings")
    parser.add_argument("--dashboards", type=int, default=60, help="timed GET /dashboard")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--analyze", action="store_true",
                        help="PostgreSQL: ANALYZE after loading, as autovacuum would (default: time as loaded)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
