"""The dialplan's questions: how long /pbx/caller-name and /pbx/route take at 10k and 1M
clients. Target: p99 <= 2 ms at 1M clients (the caller waits while the PBX asks).

    .venv/bin/python bench/pbx_lookup.py                  # SQLite, 10k and 1M clients
    .venv/bin/python bench/pbx_lookup.py --sizes 1000000 --rounds 5

The client sets are bench/lookup.py's (generated once into bench/out/lookup-SIZE.db and
reused). The app runs as ``callpop run`` would (no AMI), on a loopback port; a keep-alive
aiohttp client asks as Asterisk's CURL() does, one question at a time, for random known
numbers in the formats callers arrive in plus 10% unknown ones, with the short-lived
answer cache off (every question reads the database); the SQLite read in a worker thread
(the default) or, with --reads-on-loop, on the event loop; garbage collection paced as
``callpop run`` paces it. Figures per endpoint: ``server`` — the handler's time, measured
by a middleware around it (what the dialplan's budget is about); ``server_cpu`` — the
process's CPU time for it (the work itself); ``http`` — the round trip seen by the client
in the same process (adds the client's own parsing and the loop hop). Median round of ``--rounds``; last line JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from lookup import _numbers, _pct, _preread, prepare_sqlite  # noqa: E402

from callpop.app import create_app  # noqa: E402
from callpop.settings import settings_from_mapping  # noqa: E402

ENDPOINTS = ("/pbx/caller-name", "/pbx/route")


def _timing_middleware(sink: dict[str, list[float]]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Wall time of each answer under sink[path], and the process's CPU time for it (every
    thread: the loop and the reader) under sink[path + " cpu"] — the work itself, apart
    from waiting for a CPU on a shared machine (one question at a time, so nothing else
    of this process runs meanwhile)."""
    @web.middleware
    async def timed(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        t0, c0 = time.perf_counter(), time.process_time()
        response = await handler(request)
        sink.setdefault(request.path + " cpu", []).append((time.process_time() - c0) * 1000)
        sink.setdefault(request.path, []).append((time.perf_counter() - t0) * 1000)
        return response

    return timed


async def measure(url: str, size: int, lookups: int, warmup: int, rounds: int, *, on_loop: bool = False
                  ) -> dict[str, Any]:
    settings = settings_from_mapping({"database": {"url": url, "sqlite_reads_in_thread": not on_loop},
                                      "dialplan": {"cache_seconds": 0.0}}, environ={})
    await asyncio.to_thread(_preread, url)
    server_times: dict[str, list[float]] = {}
    app = create_app(settings, start_ami=False, pace_gc=True)  # as `callpop run` does
    app.middlewares.insert(0, _timing_middleware(server_times))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rng = random.Random(size)
    out: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            for path in ENDPOINTS:
                p50s, p99s, sp50s, sp99s, cpu99s, answered, failed = [], [], [], [], [], 0, 0
                for _ in range(rounds):
                    numbers = _numbers(size, warmup + lookups, rng)
                    server_times.clear()
                    timings = []
                    for i, number in enumerate(numbers):
                        t0 = time.perf_counter()
                        async with http.get(path, params={"number": number}) as resp:
                            body = await resp.text()
                            status = resp.headers.get("X-Callpop-Status")
                        if i >= warmup:
                            timings.append((time.perf_counter() - t0) * 1000)
                            answered += bool(body)
                            failed += status in ("timeout", "error")
                    server = server_times[path][warmup:]
                    p50s.append(round(statistics.median(timings), 3))
                    p99s.append(round(_pct(timings, 0.99), 3))
                    sp50s.append(round(statistics.median(server), 3))
                    sp99s.append(round(_pct(server, 0.99), 3))
                    cpu99s.append(round(_pct(server_times[path + " cpu"][warmup:], 0.99), 3))
                out[path.rsplit("/", 1)[1]] = {
                    "server_p50_ms": statistics.median(sp50s), "server_p99_ms": statistics.median(sp99s),
                    "server_p99_ms_rounds": sp99s, "server_cpu_p99_ms": statistics.median(cpu99s),
                    "http_p50_ms": statistics.median(p50s),
                    "http_p99_ms": statistics.median(p99s), "answered": answered, "failed_open": failed,
                    "asked": lookups * rounds}
    finally:
        await runner.cleanup()
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        url = await prepare_sqlite(size)
        result[str(size)] = await measure(url, size, args.lookups, args.warmup, args.rounds,
                                          on_loop=args.reads_on_loop)
        print(f"sqlite {size}: {result[str(size)]}", file=sys.stderr)
    targets = [v["server_p99_ms"] <= 2.0 for size, r in result.items() if size == "1000000"
               for k, v in r.items() if isinstance(v, dict)]
    return {"sqlite": result, "reads_in_thread": not args.reads_on_loop,
            "targets_met": all(targets) if targets else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--lookups", type=int, default=2000, help="timed questions per round and endpoint")
    parser.add_argument("--rounds", type=int, default=5, help="the median round is reported")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--reads-on-loop", action="store_true",
                        help="[database] sqlite_reads_in_thread = false (the read blocks the loop)")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
