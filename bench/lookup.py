"""Directory lookup latency: how long the card for a ringing number takes at 10k, 100k and
1M clients. Target on SQLite: p99 <= 2 ms at 1M clients and no more than 1.5x
growth from 10k to 1M.

    .venv/bin/python bench/lookup.py                      # SQLite, all sizes
    CALLPOP_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:55432/postgres \\
        .venv/bin/python bench/lookup.py                  # ... and PostgreSQL

Each size is generated once (≈5 history rows per client, 5 clients with 1,000 each, one
number in a thousand shared by two clients) into bench/out/lookup-SIZE.db (PostgreSQL:
database callpop_bench_SIZE) and reused while it is complete. A lookup is timed the way
the pipeline does it: open a session, ``directory.lookup(number)``, close. Numbers are
random known clients in the formats callers arrive in, plus 10% unknown numbers; the
warm-up (the SQLite file read once into the OS cache, then 300 lookups per round) is
excluded. Five rounds of 2,000 fresh numbers per size; the median round's p50/p99 are
reported (this is a shared 2-CPU VM: one round can catch another job's burst). The last
line is JSON:
{"sqlite": {"10000": {"p50_ms": ..., "p99_ms": ...}, ...}, "postgresql": {...}}
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import make_url  # noqa: E402

from callpop.phones import phone_key  # noqa: E402
from callpop.settings import DatabaseSettings, Settings  # noqa: E402
from callpop.settings_file import settings_from_mapping  # noqa: E402
from callpop.store.db import Database, open_database, reader_engine, upgrade  # noqa: E402
from callpop.store.directory import lookup, lookup_sync  # noqa: E402

OUT = ROOT / "bench" / "out"
NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
MANAGERS = 20
HEAVY = 5            # clients with 1,000 history rows each
HEAVY_ROWS = {"promises": 200, "agreements": 200, "calls": 300, "notes": 300}
SHARED_EVERY = 1000  # one client in this many also has its neighbour's number

COLUMNS: dict[str, tuple[str, ...]] = {
    "employees": ("id", "name", "login", "password_hash", "role", "active", "language", "created_at"),
    "extensions": ("extension", "employee_id"),
    "clients": ("id", "name", "company", "responsible_id", "status", "status_source", "external_id",
                "created_at", "updated_at"),
    "client_phones": ("id", "client_id", "raw", "e164", "tail10", "label"),
    "promises": ("id", "client_id", "text", "due_at", "status", "made_by_id", "call_id", "external_id",
                 "created_at", "closed_by_id", "closed_at"),
    "agreements": ("id", "client_id", "title", "terms", "amount", "currency", "status", "made_by_id", "call_id",
                   "external_id", "created_at", "closed_at"),
    "calls": ("id", "pbx_id", "call_key", "direction", "client_number", "caller_name", "client_id", "started_at",
              "answered_at", "ended_at", "outcome", "talk_seconds"),
    "call_participants": ("id", "call_id", "extension", "employee_id", "answered", "talk_seconds"),
    "notes": ("id", "client_id", "text", "author_id", "call_id", "created_at"),
}


def number_of(client: int) -> str:
    """A distinct valid Russian mobile number per client (7919 is prime to 10^9)."""
    return f"+79{(client * 7919 + 17) % 1_000_000_000:09d}"


class Generator:
    """Deterministic rows, table by table, with explicit ids."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.heavy = set(range(1, HEAVY + 1))
        self.ids = dict.fromkeys(COLUMNS, 0)

    def _id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def _ago(self, days: float) -> dt.datetime:
        return NOW - dt.timedelta(days=days)

    def employees(self) -> Iterator[tuple[Any, ...]]:
        for i in range(1, MANAGERS + 1):
            yield (i, f"Менеджер {i}", f"m{i}", "x", "manager", True, None, self._ago(400))

    def extensions(self) -> Iterator[tuple[Any, ...]]:
        for i in range(1, MANAGERS + 1):
            yield (str(100 + i), i)

    def clients(self) -> Iterator[tuple[Any, ...]]:
        for c in range(1, self.size + 1):
            created = self._ago(self.rng.uniform(30, 700))
            yield (c, f"Клиент {c}", f"ООО «Компания {c % 5000}»" if c % 3 else None, 1 + c % MANAGERS,
                   "regular" if c % 4 == 0 else "new", "rule", f"1C-{c}", created, created)

    def phones(self) -> Iterator[tuple[Any, ...]]:
        for c in range(1, self.size + 1):
            e164 = number_of(c)
            yield (self._id("client_phones"), c, "8" + e164[2:], e164, e164[2:], "моб.")
            if c % SHARED_EVERY == 0 and c > 1:
                e164 = number_of(c - 1)  # a number two clients share
                yield (self._id("client_phones"), c, e164, e164, e164[2:], "раб.")

    def _count(self, c: int, table: str, normal: int) -> int:
        return HEAVY_ROWS[table] if c in self.heavy else normal

    def promises(self) -> Iterator[tuple[Any, ...]]:
        r = self.rng
        for c in range(1, self.size + 1):
            for _ in range(self._count(c, "promises", 1)):
                status = "open" if r.random() < 0.6 else "kept"
                yield (self._id("promises"), c, "Перезвонить и выставить счёт", self._ago(r.uniform(-20, 60)),
                       status, 1 + r.randrange(MANAGERS), None, None, self._ago(r.uniform(60, 90)),
                       None, None)

    def agreements(self) -> Iterator[tuple[Any, ...]]:
        r = self.rng
        for c in range(1, self.size + 1):
            for _ in range(self._count(c, "agreements", 1)):
                status = r.choice(("open", "won", "won", "lost"))
                created = self._ago(r.uniform(0, 365))
                yield (self._id("agreements"), c, "Поставка оборудования", None,
                       Decimal(r.randrange(1000, 5_000_000)) / 100, "RUB", status, 1 + r.randrange(MANAGERS),
                       None, None, created, None if status == "open" else created + dt.timedelta(days=5))

    def calls_and_participants(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        r = self.rng
        calls: list[tuple[Any, ...]] = []
        parts: list[tuple[Any, ...]] = []
        for c in range(1, self.size + 1):
            for _ in range(self._count(c, "calls", 2)):
                cid = self._id("calls")
                start = self._ago(r.uniform(0, 365))
                talk = r.choice((0, 45, 120, 300))
                answered = talk > 0
                calls.append((cid, "main", f"b.{cid}", "inbound", number_of(c), None, c, start,
                              start + dt.timedelta(seconds=8) if answered else None,
                              start + dt.timedelta(seconds=talk + 10), "answered" if answered else "missed", talk))
                emp = 1 + r.randrange(MANAGERS)
                parts.append((self._id("call_participants"), cid, str(100 + emp), emp, answered, talk))
        return calls, parts

    def notes(self) -> Iterator[tuple[Any, ...]]:
        r = self.rng
        for c in range(1, self.size + 1):
            for _ in range(self._count(c, "notes", 1)):
                yield (self._id("notes"), c, "Предпочитает связь после обеда", 1 + r.randrange(MANAGERS), None,
                       self._ago(r.uniform(0, 365)))

    def tables(self) -> Iterator[tuple[str, list[tuple[Any, ...]] | Iterator[tuple[Any, ...]]]]:
        yield "employees", self.employees()
        yield "extensions", self.extensions()
        yield "clients", self.clients()
        yield "client_phones", self.phones()
        calls, parts = self.calls_and_participants()
        yield "calls", calls
        yield "call_participants", parts
        yield "promises", self.promises()
        yield "agreements", self.agreements()
        yield "notes", self.notes()


# --- loading -----------------------------------------------------------------------------------


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, Decimal):
        return float(v)
    return v


def _complete_sqlite(path: Path, size: int) -> bool:
    if not path.exists():
        return False
    conn = sqlite3.connect(path)
    try:
        return bool(conn.execute("SELECT count(*) FROM clients").fetchone()[0] == size)
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _reset_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)


def _fill_sqlite(path: Path, size: int) -> None:
    """Plain sqlite3 executemany in one transaction: minutes, not hours, for 1M clients."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    conn.execute("BEGIN")
    for table, rows in Generator(size).tables():
        cols = COLUMNS[table]
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        conn.executemany(sql, ([_sqlite_value(v) for v in row] for row in rows))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()


async def prepare_sqlite(size: int) -> str:
    path = OUT / f"lookup-{size}.db"
    url = f"sqlite+aiosqlite:///{path}"
    if await asyncio.to_thread(_complete_sqlite, path, size):
        await upgrade(url)  # data generated under an older schema: migrate it (indexes)
        return url
    t0 = time.perf_counter()
    await asyncio.to_thread(_reset_sqlite, path)
    await upgrade(url)
    await asyncio.to_thread(_fill_sqlite, path, size)
    print(f"sqlite {size}: generated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return url


async def prepare_postgresql(base_url: str, size: int) -> str:
    import asyncpg  # type: ignore[import-untyped]

    base = make_url(base_url)
    name = f"callpop_bench_{size}"
    url = base.set(database=name).render_as_string(hide_password=False)
    kw = {"user": base.username, "password": base.password, "host": base.host, "port": base.port}
    admin = await asyncpg.connect(database=base.database or "postgres", **kw)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            conn = await asyncpg.connect(database=name, **kw)
            try:
                if await conn.fetchval("SELECT count(*) FROM clients") == size:
                    await upgrade(url)
                    return url
            except asyncpg.PostgresError:
                pass
            finally:
                await conn.close()
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    t0 = time.perf_counter()
    await upgrade(url)
    conn = await asyncpg.connect(database=name, **kw)
    try:
        async with conn.transaction():
            for table, rows in Generator(size).tables():
                await conn.copy_records_to_table(table, records=list(rows), columns=list(COLUMNS[table]))
        for table in COLUMNS:
            if table != "extensions":
                await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                   f"(SELECT coalesce(max(id), 1) FROM {table}))")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(f"postgresql {size}: generated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return url


# --- measuring ---------------------------------------------------------------------------------


def _numbers(size: int, count: int, rng: random.Random) -> list[str]:
    out = []
    for _ in range(count):
        if rng.random() < 0.1:
            out.append(f"+7926{rng.randrange(10_000_000):07d}")  # nobody's (the 926 block is unused here)
            continue
        e164 = number_of(rng.randrange(1, size + 1))
        out.append(rng.choice((e164, "8" + e164[2:], e164[1:], "8 (" + e164[2:5] + ") " + e164[5:])))
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _queries_only(db: Database, numbers: list[str], settings: Settings) -> dict[str, float]:
    """The same lookups without the event loop and the thread hop (SQLite only): what the
    queries themselves cost, to tell them apart from scheduling when the machine is busy."""
    reader = reader_engine(db.engine)
    if reader is None:
        return {}
    timings, cpu = [], []
    with reader.connect() as conn:
        for number in numbers:
            key = phone_key(number, settings.phones.default_region, settings.phones.min_external_digits)
            t0, c0 = time.perf_counter(), time.thread_time()
            lookup_sync(conn, key, settings, NOW)
            cpu.append((time.thread_time() - c0) * 1000)
            timings.append((time.perf_counter() - t0) * 1000)
    # thread CPU time: the work itself, whatever else the machine runs (not a latency)
    return {"queries_p50_ms": round(statistics.median(timings), 3), "queries_p99_ms": round(_pct(timings, 0.99), 3),
            "queries_cpu_p99_ms": round(_pct(cpu, 0.99), 3)}


async def prewarm_postgresql(url: str) -> None:
    """PostgreSQL's counterpart of ``_preread``: every table and index of the database
    read once into the OS cache (``pg_prewarm`` in ``read`` mode, a contrib extension
    shipped with the server), so a lookup measures PostgreSQL and callpop, not the disk.
    Without it, a 1M-client database (2 GB) behind 128 MB of shared buffers reads
    several pages from disk per lookup, 1-3 ms each on this machine."""
    import asyncpg

    base = make_url(url)
    conn = await asyncpg.connect(user=base.username, password=base.password, host=base.host, port=base.port,
                                 database=base.database)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        await conn.execute("SELECT pg_prewarm(c.oid, 'read') FROM pg_class c "
                           "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')")
    finally:
        await conn.close()


def _preread(url: str) -> None:
    """Read an SQLite file once so the OS caches it, as it would on a server that has been
    running for a while; otherwise the first lookups measure the disk, not callpop."""
    path = make_url(url).database
    if path and Path(path).exists():
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass


async def _round(db: Database, numbers: list[str], warmup: int, settings: Settings) -> tuple[list[float], int]:
    timings: list[float] = []
    matched = 0
    for i, number in enumerate(numbers):
        t0 = time.perf_counter()
        async with db.sessions() as session:
            found = await lookup(session, number, settings, now=NOW)
        if i >= warmup:
            timings.append((time.perf_counter() - t0) * 1000)
            matched += bool(found.matches)
    return timings, matched


async def measure(url: str, size: int, lookups: int, warmup: int, rounds: int) -> dict[str, Any]:
    """*rounds* rounds of fresh random numbers; the figures are the median round's, so one
    burst of another process on this shared machine does not decide the p99."""
    settings = settings_from_mapping({}, environ={})
    if url.startswith("sqlite"):
        await asyncio.to_thread(_preread, url)
    db = await open_database(DatabaseSettings(url=url))
    rng = random.Random(size)
    try:
        p50s, p99s, all_numbers = [], [], []
        matched = 0
        for _ in range(rounds):
            numbers = _numbers(size, warmup + lookups, rng)
            all_numbers.extend(numbers[warmup:])
            timings, matched = await _round(db, numbers, warmup, settings)
            p50s.append(round(statistics.median(timings), 3))
            p99s.append(round(_pct(timings, 0.99), 3))
        heavy, _ = await _round(db, [number_of(c) for c in range(1, HEAVY + 1)] * 20, 0, settings)
        # the machine's load average says how much the figures owe to other processes
        out: dict[str, Any] = {
            "p50_ms": statistics.median(p50s), "p99_ms": statistics.median(p99s), "p99_ms_rounds": p99s,
            "heavy_p99_ms": round(_pct(heavy, 0.99), 3), "lookups": lookups * rounds, "matched_last_round": matched,
            "load_avg_1m": round(os.getloadavg()[0], 2)}
        out.update(_queries_only(db, all_numbers[-lookups:], settings))
        return out
    finally:
        await db.close()


async def run(args: argparse.Namespace) -> dict[str, dict[str, dict[str, Any]]]:
    sizes = [int(s) for s in args.sizes.split(",")]
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for size in sizes if not args.skip_sqlite else ():
        result.setdefault("sqlite", {})
        url = await prepare_sqlite(size)
        result["sqlite"][str(size)] = await measure(url, size, args.lookups, args.warmup, args.rounds)
        print(f"sqlite {size}: {result['sqlite'][str(size)]}", file=sys.stderr)
    pg = os.environ.get("CALLPOP_BENCH_PG_URL")
    if pg:
        result["postgresql"] = {}
        for size in sizes:
            url = await prepare_postgresql(pg, size)
            result["postgresql"][str(size)] = await measure(url, size, args.lookups, args.warmup, args.rounds)
            print(f"postgresql {size}: {result['postgresql'][str(size)]}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--lookups", type=int, default=2000, help="timed lookups per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size; the median round is reported")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL (CALLPOP_BENCH_PG_URL)")
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
