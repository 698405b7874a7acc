"""The fault table (docs/reliability.md): the daemon against faults, journal against truth.

    CALLPOP_TEST_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:55432/postgres \\
    CALLPOP_PG_PORT=55432 CALLPOP_PG_DIR=/tmp/callpop-pg \\
    .venv/bin/python bench/faults.py                       # every fault, SQLite and PostgreSQL
    .venv/bin/python bench/faults.py --db sqlite --only daemon_killed
    .venv/bin/python bench/faults.py --only daemon_killed --cdr   # with the PBX's CDR store

Each run: ``callpop run`` (a real process) against the simulated PBX on loopback (this
process) and a fresh database; 100 calls placed over ``--spread`` seconds (inbound answered,
ring groups, outbound, callers hanging up; a share too short to count), the fault injected
``--fault-at`` seconds in, and once the PBX has played everything the journal is compared
with what it played (tests/support/faults.py). The faults:

* ``daemon_killed``: SIGKILL, ``--downtime`` s down, restarted (recovery: restart to logged in);
* ``pbx_resets``: the AMI connection reset 10 times (recovery: median reset to logged in);
* ``pbx_crashed``: the PBX dies with its calls, back ``--pbx-down`` s later, new banner, no
  channels; half the burst before, half after (recovery: back to logged in);
* ``half_open``: the PBX's side goes silent (recovery: silence to logged in again);
* ``instance_killed``: two instances (``callpop run`` twice, one database, both logged in
  to the PBX; tests/support/instances.py), the first killed -9 and left down; the other
  follows the rest (no recovery: it was following all along);
* ``database_away``: the database unavailable ``--db-down`` s: PostgreSQL really stopped and
  started (``.ci/pg stop|start`` with CALLPOP_PG_PORT/CALLPOP_PG_DIR: use a server of your
  own), SQLite locked by another process (recovery: back to spool written); every manager
  has a desk open on the daemon's websocket, and the JSON says how many of the calls placed
  while the database was away rang on their manager's desk before it was back
  (``popped_while_away`` of ``placed_while_away``).

``--cdr``: the simulated PBX keeps CDR rows (callpop/simulator/cdr.py; an SQLite file beside
an SQLite journal, a ``cdr`` table in the journal's PostgreSQL database) and the daemon's
``[cdr]`` puts the rows it could not see whole right from them (callpop/cdr_reconciler.py).

Columns: calls played, recorded (rows), open rows, contacts expected/counted, lost (of which
knowable: neither wholly inside the daemon's downtime nor ended in it with less than
min_talk of talk the daemon had read before its last heartbeat: what it had read is
measured at the kill, tests/support/ami_reads.py), extra, doubled, talk-time error (max/median seconds, over
answered calls) and recovery time. Last line: the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import make_url  # noqa: E402

from callpop.settings import DatabaseSettings  # noqa: E402
from callpop.store.db import open_database, upgrade  # noqa: E402
from tests.support.faults import (  # noqa: E402
    Plan,
    Run,
    daemon_killed,
    database_away,
    half_open,
    open_desks,
    pbx_crashed,
    pbx_resets,
    sqlite_lock,
)
from tests.support.instances import Instances, instance_killed  # noqa: E402
from tests.support.pg import pg_admin  # noqa: E402

FAULTS = ("daemon_killed", "pbx_resets", "pbx_crashed", "half_open", "database_away", "instance_killed")
PG_URL = os.environ.get("CALLPOP_TEST_PG_URL", "")


def _pg(action: str) -> None:
    subprocess.run(["bash", str(ROOT / ".ci" / "pg"), action], check=True, stdout=subprocess.DEVNULL)


async def _fresh_db(kind: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'callpop.db'}"
        await upgrade(url)
        return url, None
    name = f"callpop_fault_{uuid.uuid4().hex[:10]}"
    await pg_admin(PG_URL, f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    await upgrade(url)
    return url, name


def _pg_outage(run: Run) -> tuple[Any, Any]:
    async def down() -> None:
        await asyncio.to_thread(_pg, "stop")

    async def up() -> None:
        await asyncio.to_thread(_pg, "start")

    return down, up


async def one(kind: str, fault: str, plan: Plan, *, keep: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"callpop-fault-{fault}-"))
    url, pg_name = await _fresh_db(kind, tmp)
    run = Run(url, tmp, plan)
    db = await open_database(DatabaseSettings(url=url))
    try:
        await run.seed(db)
    finally:
        await db.close()
    await run.start_pbx()
    instances = Instances(run, 2) if fault == "instance_killed" else None
    if instances is not None:
        await instances.start()
    else:
        await run.start_daemon()
    started = time.monotonic()
    try:
        if instances is not None:
            result = await instance_killed(run, instances)
        elif fault == "daemon_killed":
            result = await daemon_killed(run)
        elif fault == "pbx_resets":
            result = await pbx_resets(run)
        elif fault == "pbx_crashed":
            result = await pbx_crashed(run)
        elif fault == "half_open":
            result = await half_open(run)
        else:
            outage = _pg_outage(run) if kind == "postgresql" else sqlite_lock(run)
            desks = await open_desks(run)  # every manager's desk: do the pops go on?
            try:
                result = await database_away(run, outage, desks)
            finally:
                await desks.close()
    finally:
        if instances is not None:
            await instances.stop()
        await run.close()
        if pg_name is not None:
            _pg("start")  # in case a fault left it stopped
            await pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    result.pop("missing_detail", None)
    result["seconds"] = round(time.monotonic() - started, 1)
    if keep:
        print(f"kept: {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _row(kind: str, fault: str, r: dict[str, Any]) -> str:
    return (f"| {fault} | {kind} | {r['calls']} | {r['recorded']} | {r['open_rows']} | "
            f"{r['contacts_expected']} | {r['contacts_counted']} | {r['lost']} ({r['lost_knowable']}) | "
            f"{r['extra']} | {r['doubled']} | {r['talk_error_max']} / {r['talk_error_median']} | "
            f"{r['recovery_s']} |")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--only", choices=FAULTS, action="append")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--spread", type=float, default=5.0)
    ap.add_argument("--fault-at", type=float, default=2.5)
    ap.add_argument("--downtime", type=float, default=4.7, help="daemon killed for this long")
    ap.add_argument("--pbx-down", type=float, default=2.0)
    ap.add_argument("--db-down", type=float, default=30.0)
    ap.add_argument("--min-talk", type=int, default=6)
    ap.add_argument("--keep", action="store_true", help="keep each run's directory (daemon log, databases)")
    ap.add_argument("--cdr", action="store_true",
                    help="the PBX keeps CDR rows and the daemon reconciles uncertain rows from them ([cdr])")
    args = ap.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and not PG_URL:
        sys.exit("CALLPOP_TEST_PG_URL is not set (and CALLPOP_PG_PORT/CALLPOP_PG_DIR for .ci/pg)")
    results: dict[str, dict[str, Any]] = {}
    print("| fault | db | calls | recorded | open rows | contacts expected | counted | lost (knowable) "
          "| extra | doubled | talk error max / median s | recovery s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for fault in args.only or FAULTS:
        for kind in kinds:
            plan = Plan(calls=args.calls, spread=args.spread, fault_at=args.fault_at, min_talk=args.min_talk,
                        long_talk=(args.min_talk + 6.0, args.min_talk + 14.0), short_talk=(0.5, args.min_talk - 2.0),
                        downtime=args.pbx_down if fault == "pbx_crashed" else args.downtime,
                        db_downtime=args.db_down, cdr=args.cdr)
            r = await one(kind, fault, plan, keep=args.keep)
            label = f"{kind} + CDR" if args.cdr else kind
            results[f"{fault}/{label}"] = r
            print(_row(label, fault, r), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
