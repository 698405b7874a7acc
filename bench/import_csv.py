"""How long `callpop import` takes on large 1C-style files (SQLite, and PostgreSQL when
CALLPOP_TEST_PG_URL is set): 100k clients, then 100k payments, then the same files again
(the re-import must change nothing). Last line: JSON with seconds per step and backend.

    .venv/bin/python bench/import_csv.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from callpop.settings_file import settings_from_mapping
from callpop.store.db import open_database, upgrade
from callpop.store.imports.importer import import_file


def write_files(folder: Path, rows: int) -> tuple[Path, Path]:
    rng = random.Random(1)
    clients = folder / "clients.csv"
    with clients.open("w", encoding="cp1251", newline="") as f:
        f.write("Код;Наименование;Телефон;Ответственный\r\n")
        for i in range(rows):
            phones = [f"8 (9{rng.randint(10, 99)}) {rng.randint(100, 999)}-{i % 100:02d}-{i // 100 % 100:02d}"]
            if rng.random() < 0.2:
                phones.append(f"+7 495 {rng.randint(200, 999)} {i % 100:02d} {i // 100 % 100:02d}")
            f.write(f"{i:09d};\"ООО «Клиент {i}»\";\"{', '.join(phones)}\";\r\n")
    payments = folder / "payments.csv"
    with payments.open("w", encoding="utf-8", newline="") as f:
        f.write("number,client,amount,date\n")
        for i in range(rows):
            f.write(f"P{i},{rng.randrange(rows):09d},\"{rng.randint(1, 900)} {rng.randint(0, 999):03d},00\","
                    f"{rng.randint(1, 28):02d}.{rng.randint(1, 10):02d}.2026\n")
    return clients, payments


async def run(url: str, clients: Path, payments: Path) -> dict[str, Any]:
    await upgrade(url)
    settings = settings_from_mapping({"database": {"url": url}}, environ={})
    db = await open_database(settings.database)
    out: dict[str, Any] = {}
    try:
        for step, kind, path in (("clients", "clients", clients), ("payments", "payments", payments),
                                 ("clients_again", "clients", clients), ("payments_again", "payments", payments)):
            started = time.perf_counter()
            report = await import_file(db, kind, path, settings)
            out[step] = round(time.perf_counter() - started, 2)
            print(f"{url.split(':')[0]:<20} {step:<15} {out[step]:>7.2f} s  {report.summary()[:100]}", flush=True)
    finally:
        await db.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    results: dict[str, Any] = {"rows": args.rows}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clients, payments = write_files(folder, args.rows)
        results["sqlite"] = await run(f"sqlite+aiosqlite:///{folder / 'bench.db'}", clients, payments)
        pg = os.environ.get("CALLPOP_TEST_PG_URL")
        if pg:
            import asyncpg  # type: ignore[import-untyped]

            name = f"callpop_bench_{uuid.uuid4().hex[:8]}"
            base = make_url(pg)
            conn = await asyncpg.connect(user=base.username, password=base.password, host=base.host,
                                         port=base.port, database=base.database or "postgres")
            await conn.execute(f'CREATE DATABASE "{name}"')
            try:
                url = base.set(database=name).render_as_string(hide_password=False)
                results["postgresql"] = await run(url, clients, payments)
            finally:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.close()
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
