"""What hearing of other processes' writes costs the dialplan's answers on SQLite: the
same questions, side by side, with the directory watch checking every 0.2 s (the
default), every 0.01 s (twenty times as often), and off.

    .venv/bin/python bench/directory_watch.py                       # 1M clients, 3 rounds
    .venv/bin/python bench/directory_watch.py --outside-writes 1    # and an import-like writer

SQLite has no NOTIFY, so a background task reads ``directory_version`` (bumped by the
triggers of every writer) on a thread and connection of its own
(callpop/store/directory_changes.py). It never runs on the answer's path; this measures
whether it slows the answers anyway (the GIL, the event loop, the disk). As in
bench/pbx_lookup.py: the server is its own process (``create_app`` as ``callpop run``
builds it, no AMI, the shipped ``[dialplan]`` settings), this process is the client, and
calls arrive at random (Poisson) at ``--rate`` per second, each asking caller-name then
route for one random known number (10% unknown) with its own ``call=`` id, over up to 8
keep-alive connections. The variants take turns round by round. Figures per variant,
median of the rounds: the client's round trip p50/p99 per question, and the server
process's CPU time per call (the questions, the card prefetch, the watch's checks) read
from ``/proc``, which a busy machine disturbs less than latencies. ``--outside-writes N``:
another process's connection changes a client N times a second meanwhile (each change
makes every instance forget its remembered answers, so the route question is read
again). The data is bench/lookup.py's (bench/out/lookup-SIZE.db). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pbx_lookup import _cpu_seconds, _pct  # the same figures as the dialplan bench's

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ("/pbx/caller-name", "/pbx/route")
VARIANTS = {"every 0.2 s": 0.2, "every 0.01 s": 0.01, "off": 0.0}


def serve(args: argparse.Namespace) -> None:
    """The app on a loopback port, the watch checking every ``args.check`` seconds."""
    sys.path.insert(0, str(ROOT))
    from aiohttp import web

    from callpop.app import create_app
    from callpop.settings_file import settings_from_mapping

    async def main() -> None:
        settings = settings_from_mapping({"database": {"url": args.url, "sqlite_change_check": args.check}},
                                         environ={})
        runner = web.AppRunner(create_app(settings, start_ami=False, pace_gc=True), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await runner.cleanup()

    asyncio.run(main())


class OutsideWriter(threading.Thread):
    """Another process's writes, as ``callpop import`` makes them: one client changed per
    transaction, *rate* times a second, on a plain sqlite3 connection of its own."""

    def __init__(self, path: str, rate: float, size: int) -> None:
        super().__init__(daemon=True)
        self.path, self.rate, self.size = path, rate, size
        self.writes = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        rng = random.Random(5)
        while not self.stopping.wait(1 / self.rate):
            conn.execute("UPDATE clients SET updated_at = CURRENT_TIMESTAMP WHERE id = ?",
                         (rng.randrange(1, self.size + 1),))
            self.writes += 1
        conn.close()


def _start_server(check: float, url: str) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--url", url, "--check", str(check)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(json.loads(proc.stdout.readline())["port"])


async def _round(check: float, url: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    import aiohttp
    from lookup import _numbers

    proc, port = await asyncio.to_thread(_start_server, check, url)
    assert proc.stdin is not None
    rng = random.Random(seed)
    timings: dict[str, list[float]] = {q: [] for q in QUESTIONS}
    statuses: dict[str, int] = {}
    writer = OutsideWriter(url.split("///", 1)[1], args.outside_writes, args.size) if args.outside_writes else None
    try:
        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:
            async def call(i: int, number: str, record: bool) -> None:
                params = {"number": number, "call": f"{seed}.{i}"}
                for path in QUESTIONS:
                    t0 = time.perf_counter()
                    async with http.get(path, params=params) as resp:
                        await resp.text()
                        status = resp.headers.get("X-Callpop-Status", "")
                    if record:
                        timings[path].append((time.perf_counter() - t0) * 1000)
                        statuses[status] = statuses.get(status, 0) + 1

            async def arrivals(total: int, record: bool) -> None:
                numbers = _numbers(args.size, total, rng)
                tasks = []
                start, at = time.perf_counter(), 0.0
                for i, number in enumerate(numbers):
                    wait = start + at - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    tasks.append(asyncio.create_task(call(i, number, record)))
                    at += rng.expovariate(args.rate)
                await asyncio.gather(*tasks)

            await arrivals(args.warmup, False)
            if writer is not None:
                writer.start()
            load = os.getloadavg()[0]
            cpu0 = _cpu_seconds(proc.pid)
            await arrivals(args.calls, True)
            cpu = _cpu_seconds(proc.pid) - cpu0
    finally:
        if writer is not None:
            writer.stopping.set()
            writer.join()
        proc.stdin.close()
        proc.wait(timeout=30)
    out: dict[str, Any] = {q.rsplit("/", 1)[1]: {"p50": round(statistics.median(v), 3), "p99": round(_pct(v, 0.99), 3)}
                           for q, v in timings.items()}
    out["failed_open"] = statuses.get("timeout", 0) + statuses.get("error", 0) + statuses.get("busy", 0)
    out["outside_writes"] = writer.writes if writer is not None else 0
    out["cpu_per_call_ms"] = round(cpu * 1000 / args.calls, 3)
    out["load_1m"] = round((load + os.getloadavg()[0]) / 2, 2)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from lookup import _preread, prepare_sqlite

    url = await prepare_sqlite(args.size)
    await asyncio.to_thread(_preread, url)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        order = list(VARIANTS.items())
        for name, check in order[r % len(order):] + order[:r % len(order)]:
            got = await _round(check, url, args, seed=1000 * r + 7)
            rounds[name].append(got)
            print(f"round {r + 1} watch {name}: load {got['load_1m']}  caller-name {got['caller-name']['p50']}/"
                  f"{got['caller-name']['p99']}  route {got['route']['p50']}/{got['route']['p99']} ms  "
                  f"cpu/call {got['cpu_per_call_ms']} ms  failed open {got['failed_open']}  "
                  f"outside writes {got['outside_writes']}", file=sys.stderr)
    result: dict[str, Any] = {"clients": args.size, "rate_per_s": args.rate, "calls_per_round": args.calls,
                              "rounds": args.rounds, "outside_writes_per_s": args.outside_writes,
                              "cpus": os.cpu_count()}
    for name, got in rounds.items():
        result[name] = {q: {k: round(statistics.median(g[q][k] for g in got), 3) for k in ("p50", "p99")}
                        | {"p99_rounds": [g[q]["p99"] for g in got]} for q in ("caller-name", "route")}
        result[name]["failed_open"] = sum(g["failed_open"] for g in got)
        result[name]["cpu_per_call_ms"] = round(statistics.median(g["cpu_per_call_ms"] for g in got), 3)
        result[name]["cpu_per_call_ms_rounds"] = [g["cpu_per_call_ms"] for g in got]
        result[name]["load_1m_rounds"] = [g["load_1m"] for g in got]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="clients in the directory")
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per round (two questions each)")
    parser.add_argument("--warmup", type=int, default=100, help="calls before the timed ones")
    parser.add_argument("--rounds", type=int, default=3, help="per variant; the median round is reported")
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second (Poisson arrivals)")
    parser.add_argument("--outside-writes", type=float, default=0.0,
                        help="directory writes per second by another connection meanwhile")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--check", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
