"""How long `callpop demo` takes to seed its company (SQLite): the demo's start-up time a
newcomer waits through. Repeats the seed into fresh databases; prints median and worst.
Last line: JSON.

    .venv/bin/python bench/demo_seed.py [--clients 3000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from callpop.demo.seed import seed_demo
from callpop.settings import DemoSettings
from callpop.settings_file import settings_from_mapping
from callpop.store.db import open_database, upgrade

NOW = dt.datetime(2026, 3, 16, 11, 0, tzinfo=ZoneInfo("Europe/Moscow"))


async def one(folder: Path, clients: int, run: int) -> float:
    url = f"sqlite+aiosqlite:///{folder / f'seed{run}.db'}"
    await upgrade(url)
    settings = settings_from_mapping({"database": {"url": url}}, environ={})
    settings = settings.replace(demo=DemoSettings(clients=clients))
    db = await open_database(settings.database)
    try:
        started = time.perf_counter()
        await seed_demo(db, settings, now=NOW)
        return time.perf_counter() - started
    finally:
        await db.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times = [await one(Path(tmp), args.clients, run) for run in range(args.runs)]
    for i, t in enumerate(times):
        print(f"run {i + 1}: {t:.2f} s")
    print(json.dumps({"clients": args.clients, "median_s": round(statistics.median(times), 2),
                      "max_s": round(max(times), 2)}))


if __name__ == "__main__":
    asyncio.run(main())
