"""The dialplan's questions asked as a PBX asks them: /pbx/caller-name then /pbx/route for
each call, over keep-alive HTTP, from a client process separate from the server process.
Target: p99 <= 2 ms at 1M clients (the caller waits while the PBX asks).

    .venv/bin/python bench/pbx_lookup.py                                # SQLite, 1M clients
    CALLPOP_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres \\
        .venv/bin/python bench/pbx_lookup.py                            # ... and PostgreSQL
    git worktree add /tmp/callpop-base main
    .venv/bin/python bench/pbx_lookup.py --compare /tmp/callpop-base    # old code beside this

The client sets are bench/lookup.py's (bench/out/lookup-SIZE.db; PostgreSQL: database
callpop_bench_SIZE), generated once. For every round and every code tree (this one and,
with ``--compare``, another checkout's ``callpop`` package, e.g. main's), the server is
its own process running ``create_app`` as ``callpop run`` does (no AMI; the shipped
``[dialplan]`` settings: answer cache on, 80 ms budget) and this process is the client:
calls arrive at random (Poisson) at ``--rate`` per second, each asks caller-name and then
route for one random known number (10% unknown) with its own ``call=`` id, so each also
starts the card prefetch; up to ``--concurrency`` keep-alive connections. The trees take
turns round by round, so both see the same machine. Beside the calls, at half the rate,
two reference requests through the same server and the same load: ``floor`` (answered by
the outermost middleware, no handler: what HTTP on this machine costs now) and
``/health`` (a handler with one database round trip).

Figures (ms) per database and tree, median of the rounds: ``p50``/``p99`` of the round
trip seen by the client; ``server_p99``: the handler's own time (a middleware in the
server, what ``[dialplan] timeout`` bounds); ``cpu_per_call``: the server process's CPU
time per call (two questions and the prefetch); ``failed_open``: answers that hit the
budget. The load average is printed at each round; the last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "/bench/floor"
TIMES = "/bench/times"
QUESTIONS = ("/pbx/caller-name", "/pbx/route")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


# --- the server process ------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Run the app of the tree in ``args.code`` on a loopback port; print the port."""
    sys.path.insert(0, str(Path(args.code).resolve()))
    from aiohttp import web

    import callpop
    from callpop.app import create_app
    from callpop.settings_file import settings_from_mapping

    times: dict[str, list[float]] = {}

    @web.middleware
    async def timed(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == FLOOR:
            return web.Response(text="")
        if request.path == TIMES:
            body = json.dumps({k: v for k, v in times.items()})
            times.clear()
            return web.Response(text=body)
        t0 = time.perf_counter()
        response: web.StreamResponse = await handler(request)
        times.setdefault(request.path, []).append((time.perf_counter() - t0) * 1000)
        return response

    async def main() -> None:
        settings = settings_from_mapping({"database": {"url": args.url,
                                                       "sqlite_reads_in_thread": not args.reads_on_loop},
                                          "dialplan": {"cache_seconds": args.cache_seconds}}, environ={})
        app = create_app(settings, start_ami=False, pace_gc=True)
        app.middlewares.insert(0, timed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(json.dumps({"port": runner.addresses[0][1], "code": str(Path(callpop.__file__).parent)}), flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the client closes it
        finally:
            await runner.cleanup()

    asyncio.run(main())


# --- the client (this process) -----------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(code: str, url: str, args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--code", code, "--url", url,
           "--cache-seconds", str(args.cache_seconds)] + (["--reads-on-loop"] if args.reads_on_loop else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"server for {code} did not start")
    info = json.loads(line)
    expected = (Path(code).resolve() / "callpop").resolve()
    if Path(info["code"]).resolve() != expected:
        raise RuntimeError(f"server imported {info['code']}, expected {expected}")
    return proc, int(info["port"])


async def _round(code: str, url: str, size: int, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    import aiohttp
    from lookup import _numbers

    proc, port = await asyncio.to_thread(_start_server, code, url, args)
    rng = random.Random(seed)
    timings: dict[str, list[float]] = {p: [] for p in (*QUESTIONS, FLOOR, "/health")}
    failed = answered = 0
    try:
        base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
        # the probes on connections of their own: they must not queue behind slow questions
        async with aiohttp.ClientSession(base, connector=connector) as http, aiohttp.ClientSession(base) as probes:
            async def get(path: str, params: dict[str, str], record: bool) -> tuple[str, str]:
                t0 = time.perf_counter()
                async with (http if path in QUESTIONS else probes).get(path, params=params) as resp:
                    body = await resp.text()
                if record:
                    timings[path].append((time.perf_counter() - t0) * 1000)
                return body, resp.headers.get("X-Callpop-Status", "")

            async def call(i: int, number: str, record: bool) -> None:
                nonlocal failed, answered
                params = {"number": number} | ({} if args.no_prefetch else {"call": f"{seed}.{i}"})
                for path in QUESTIONS:
                    body, status = await get(path, params, record)
                    if record:
                        failed += status in ("timeout", "error")
                        answered += bool(body)

            async def probe(i: int, record: bool) -> None:
                await get(FLOOR if i % 2 else "/health", {}, record)

            async def arrivals(total: int, record: bool) -> None:
                numbers = _numbers(size, total, rng)
                tasks: list[asyncio.Task[None]] = []
                start = time.perf_counter()
                at = probe_at = 0.0
                i = p = 0
                while i < total:
                    if probe_at < at:
                        delay, job = probe_at, probe(p, record)
                        probe_at += rng.expovariate(args.rate / 2)
                        p += 1
                    else:
                        delay, job = at, call(i, numbers[i], record)
                        at += rng.expovariate(args.rate)
                        i += 1
                    wait = start + delay - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    tasks.append(asyncio.create_task(job))
                await asyncio.gather(*tasks)

            await arrivals(args.warmup, False)
            async with http.get(TIMES) as resp:
                await resp.text()
            load_before = os.getloadavg()[0]
            cpu0 = _cpu_seconds(proc.pid)
            await arrivals(args.calls, True)
            cpu = _cpu_seconds(proc.pid) - cpu0
            async with http.get(TIMES) as resp:
                server = json.loads(await resp.text())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    out: dict[str, Any] = {}
    for path, values in timings.items():
        name = path.rsplit("/", 1)[1] or path
        out[name] = {"p50": round(statistics.median(values), 3), "p99": round(_pct(values, 0.99), 3),
                     "max": round(max(values), 3), "n": len(values)}
        if path in QUESTIONS:
            out[name]["server_p99"] = round(_pct(server.get(path, []), 0.99), 3)
    out["cpu_per_call_ms"] = round(cpu * 1000 / args.calls, 3)
    out["failed_open"] = failed
    out["answered"] = answered
    out["load_1m"] = round((load_before + os.getloadavg()[0]) / 2, 2)
    return out


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of the rounds for every figure; the p99 of each round kept too."""
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        if isinstance(value, dict):
            out[key] = {k: round(statistics.median(r[key][k] for r in rounds), 3) for k in value if k != "n"}
            out[key]["p99_rounds"] = [r[key]["p99"] for r in rounds]
        else:
            out[key] = round(statistics.median(r[key] for r in rounds), 3)
    out["load_1m_rounds"] = [r["load_1m"] for r in rounds]
    out["failed_open"] = sum(r["failed_open"] for r in rounds)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from lookup import _preread, prepare_postgresql, prepare_sqlite

    trees = {"this": str(ROOT)} | ({"compare": args.compare} if args.compare else {})
    databases: dict[str, str] = {}
    if not args.skip_sqlite:
        databases["sqlite"] = await prepare_sqlite(args.size)
        await asyncio.to_thread(_preread, databases["sqlite"])  # in the OS cache, as on a server running a while
    pg = os.environ.get("CALLPOP_BENCH_PG_URL")
    if pg:
        databases["postgresql"] = await prepare_postgresql(pg, args.size)
    result: dict[str, Any] = {"clients": args.size, "rate_per_s": args.rate, "concurrency": args.concurrency,
                              "calls_per_round": args.calls, "rounds": args.rounds, "cache_seconds": args.cache_seconds,
                              "reads_in_thread": not args.reads_on_loop,
                              "prefetch": not args.no_prefetch, "cpus": os.cpu_count(), "trees": trees}
    for db, url in databases.items():
        per_tree: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for r in range(args.rounds):
            for name, code in (trees.items() if r % 2 == 0 else reversed(trees.items())):
                got = await _round(code, url, args.size, args, seed=1000 * r + 7)
                per_tree[name].append(got)
                print(f"{db} {name} round {r + 1}: load {got['load_1m']}  "
                      + "  ".join(f"{k} {v['p50']}/{v['p99']}" for k, v in got.items() if isinstance(v, dict))
                      + f"  cpu/call {got['cpu_per_call_ms']} ms  failed open {got['failed_open']}", file=sys.stderr)
        result[db] = {name: _summary(rounds) for name, rounds in per_tree.items()}
    result["targets_met"] = {db: all(result[db]["this"][q]["p99"] <= 2.0 for q in ("caller-name", "route"))
                             for db in databases}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="clients in the directory")
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per round (two questions each)")
    parser.add_argument("--warmup", type=int, default=100, help="calls before the timed ones")
    parser.add_argument("--rounds", type=int, default=3, help="per tree; the median round is reported")
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second (Poisson arrivals)")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections at most")
    parser.add_argument("--compare", help="another checkout (e.g. a git worktree of main) measured alongside")
    parser.add_argument("--cache-seconds", type=float, default=5.0, help="[dialplan] cache_seconds of the server")
    parser.add_argument("--reads-on-loop", action="store_true",
                        help="[database] sqlite_reads_in_thread = false (the read blocks the loop)")
    parser.add_argument("--no-prefetch", action="store_true",
                        help="ask without call=, so no card lookup is started (the questions alone)")
    parser.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL (CALLPOP_BENCH_PG_URL)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
