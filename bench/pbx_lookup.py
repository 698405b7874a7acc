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

Two clients (``--client``), each a round of its own against a fresh server:

* ``raw``: what Asterisk's ``CURL()`` does, approximately: libcurl in the channel's
  thread, a blocking socket (TCP_NODELAY), the request's bytes built before the clock
  starts and written at once, the answer read by its Content-Length; a call's two
  questions in one thread on one kept-alive connection. The client's own Python is a
  few microseconds per exchange, so this is the figure the PBX sees (and the target's).
* ``raw-fresh``: the same, but each call opens its own connection (its first question's
  time includes the connect) and closes it: func_curl keeps one curl handle per thread,
  and each call is a new channel thread on the PBX, so this is the closer model.
* ``aiohttp``: aiohttp's client on the bench's event loop, as the first version of this
  bench measured: its own parsing and scheduling add to every round trip.

Figures (ms) per database, tree and client, median of the rounds: ``p50``/``p99`` of the
round trip seen by the client; ``server_p99``: the handler's own time (a middleware in
the server, what ``[dialplan] timeout`` bounds); ``cpu_per_call``: the server process's
CPU time per call (two questions, the prefetch and the probes); ``gc_*``: the server's
garbage collections (each a pause of the loop); ``failed_open``: answers that hit the
budget. ``--profile PREFIX`` writes a cProfile of each server's event-loop thread. The
load average is printed at each round; the last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
    from callpop.server.keys import EXTRA
    from callpop.settings_file import settings_from_mapping

    times: dict[str, list[float]] = {}
    gc_started = [0.0]

    def gc_timer(phase: str, info: dict[str, Any]) -> None:
        """Each collection's pause (the loop stands still meanwhile), into ``gc``."""
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            times.setdefault("gc", []).append((time.perf_counter() - gc_started[0]) * 1000)

    gc.callbacks.append(gc_timer)

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
        dialplan: dict[str, Any] = {"cache_seconds": args.cache_seconds}
        if args.listen:
            dialplan["listen"] = "127.0.0.1:0"
        settings = settings_from_mapping({"database": {"url": args.url,
                                                       "sqlite_reads_in_thread": not args.reads_on_loop},
                                          "dialplan": dialplan}, environ={})
        app = create_app(settings, start_ami=False, pace_gc=True)
        app.middlewares.insert(0, timed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        keeper = app[EXTRA].get("caller_index")
        index_s = await _index_ready(keeper)
        if args.rebuilding and keeper is not None:  # the worst case: a new copy read all the time
            async def rebuild_forever() -> None:
                while await keeper.rebuild():  # until the server stops
                    pass

            app[EXTRA]["bench_rebuilding"] = asyncio.create_task(rebuild_forever())
        listener = app[EXTRA].get("dialplan_listener")
        print(json.dumps({"port": runner.addresses[0][1], "code": str(Path(callpop.__file__).parent),
                          "index_s": index_s, "questions_port": listener.port if listener else None}), flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the client closes it
        finally:
            await runner.cleanup()

    if not args.profile:
        asyncio.run(main())
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(main())
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)


async def _index_ready(keeper: Any) -> float | None:
    """Seconds until the directory in memory answers (a tree without one: None), so that
    no round is timed while it is read, as on a server running a while."""
    if keeper is None:
        return None
    t0 = time.perf_counter()
    while keeper.stale() or not keeper.current():
        if time.perf_counter() - t0 > 600:
            raise RuntimeError("the directory in memory was not read within 600 s")
        await asyncio.sleep(0.1)
    return round(time.perf_counter() - t0, 2)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# --- the client (this process) -----------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(code: str, url: str, args: argparse.Namespace) -> tuple[subprocess.Popen[str], int, int]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--code", code, "--url", url,
           "--cache-seconds", str(args.cache_seconds)] + (["--reads-on-loop"] if args.reads_on_loop else []) \
        + (["--rebuilding"] if args.rebuilding and code == str(ROOT) else []) \
        + (["--listen"] if args.listen and code == str(ROOT) else [])
    if args.profile:
        cmd += ["--profile", f"{args.profile}.{Path(code).name}.{url.split(':', 1)[0]}.{time.time_ns()}.prof"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"server for {code} did not start")
    info = json.loads(line)
    if info.get("index_s") is not None:
        print(f"  {Path(code).name}: directory in memory after {info['index_s']} s, server RSS "
              f"{_rss_mb(proc.pid)} MB", file=sys.stderr)
    expected = (Path(code).resolve() / "callpop").resolve()
    if Path(info["code"]).resolve() != expected:
        raise RuntimeError(f"server imported {info['code']}, expected {expected}")
    return proc, int(info["port"]), int(info.get("questions_port") or info["port"])


def request_bytes(port: int, path: str, params: dict[str, str]) -> bytes:
    """The request as curl sends it for ``CURL(url)`` (Asterisk's user agent)."""
    target = path + ("?" + urlencode(params) if params else "")
    return (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "User-Agent: asterisk-libcurl-agent/1.0\r\nAccept: */*\r\n\r\n").encode()


class RawHttp:
    """One keep-alive HTTP/1.1 connection used the way libcurl does in an Asterisk channel
    thread: a blocking socket with TCP_NODELAY, the request's bytes written at once, the
    answer read by its Content-Length. No Python HTTP library on the client's side, so
    the round trip is the server's and the kernel's, not an asyncio client's."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, path: str, params: dict[str, str]) -> bytes:
        return request_bytes(self.port, path, params)

    def get(self, request: bytes) -> tuple[int, bytes, str]:
        """Status, body and X-Callpop-Status of one exchange."""
        self.sock.sendall(request)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        lines = buf[:end].decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        need = end + 4 + int(headers["content-length"])
        while len(buf) < need:
            buf += self._recv()
        self.buf = buf[need:]
        return int(lines[0].split()[1]), buf[end + 4:need], headers.get("x-callpop-status", "")

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


async def _round(code: str, url: str, size: int, args: argparse.Namespace, seed: int,
                 client: str) -> dict[str, Any]:
    from lookup import _numbers

    proc, port, questions_port = await asyncio.to_thread(_start_server, code, url, args)
    rng = random.Random(seed)
    timings: dict[str, list[float]] = {p: [] for p in (*QUESTIONS, FLOOR, "/health")}
    counts = {"failed": 0, "answered": 0}
    try:
        asker: _RawAsker | _AiohttpAsker = (
            _AiohttpAsker(port, args.concurrency) if client == "aiohttp"
            else _RawAsker(port, args.concurrency, fresh=client == "raw-fresh", questions_port=questions_port))
        try:
            async def call(i: int, number: str, record: bool) -> None:
                params = {"number": number} | ({} if args.no_prefetch else {"call": f"{seed}.{i}"})
                for path, ms, body, status in await asker.call(params):
                    if record:
                        timings[path].append(ms)
                        counts["failed"] += status in ("timeout", "error")
                        counts["answered"] += bool(body)

            async def probe(i: int, record: bool) -> None:
                path, ms = await asker.probe(FLOOR if i % 2 else "/health")
                if record:
                    timings[path].append(ms)

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
            await asker.text(TIMES)
            load_before = os.getloadavg()[0]
            cpu0 = _cpu_seconds(proc.pid)
            await arrivals(args.calls, True)
            cpu = _cpu_seconds(proc.pid) - cpu0
            rss = _rss_mb(proc.pid)
            server = json.loads(await asker.text(TIMES))
        finally:
            await asker.close()
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
    pauses = server.get("gc", [])
    out["gc_pauses"] = len(pauses)
    out["gc_max_ms"] = round(max(pauses, default=0.0), 3)
    out["gc_total_ms"] = round(sum(pauses), 1)
    out["cpu_per_call_ms"] = round(cpu * 1000 / args.calls, 3)
    out["server_rss_mb"] = rss
    out["failed_open"] = counts["failed"]
    out["answered"] = counts["answered"]
    out["load_1m"] = round((load_before + os.getloadavg()[0]) / 2, 2)
    return out


Exchange = tuple[str, float, bytes, str]  # path, round trip ms, body, X-Callpop-Status


class _AiohttpAsker:
    """The questions through aiohttp's client (a Python asyncio client: slower than curl)."""

    def __init__(self, port: int, concurrency: int) -> None:
        import aiohttp

        base = f"http://127.0.0.1:{port}"
        self.http = aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=concurrency))
        self.probes = aiohttp.ClientSession(base)  # its own connections: never behind a slow question

    async def _get(self, session: Any, path: str, params: dict[str, str]) -> Exchange:
        t0 = time.perf_counter()
        async with session.get(path, params=params) as resp:
            body = await resp.read()
        return path, (time.perf_counter() - t0) * 1000, body, resp.headers.get("X-Callpop-Status", "")

    async def call(self, params: dict[str, str]) -> list[Exchange]:
        return [await self._get(self.http, path, params) for path in QUESTIONS]

    async def probe(self, path: str) -> tuple[str, float]:
        got = await self._get(self.probes, path, {})
        return got[0], got[1]

    async def text(self, path: str) -> str:
        return (await self._get(self.http, path, {}))[2].decode()

    async def close(self) -> None:
        await self.http.close()
        await self.probes.close()


class _RawAsker:
    """The questions through ``RawHttp``, each call's two in one thread on one connection
    (a channel thread's curl handle keeps its connection), like the dialplan snippet.
    *fresh*: each call opens its own connection, its first question's time including the
    connect, and closes it after the second: func_curl keeps one curl handle per thread,
    and every call is a new channel thread on the PBX."""

    def __init__(self, port: int, concurrency: int, *, fresh: bool = False, questions_port: int = 0) -> None:
        self.port = port
        self.questions_port = questions_port or port  # [dialplan] listen, when the server has it
        self.fresh = fresh
        self.threads = ThreadPoolExecutor(max_workers=concurrency + 2, thread_name_prefix="bench-curl")
        self.calls: queue.SimpleQueue[RawHttp] = queue.SimpleQueue()
        self.probes: queue.SimpleQueue[RawHttp] = queue.SimpleQueue()
        self.opened: list[RawHttp] = []
        for pool, n, at in ((self.calls, concurrency, self.questions_port), (self.probes, 2, port)):
            for _ in range(n):
                conn = RawHttp(at)
                self.opened.append(conn)
                pool.put(conn)

    def _exchanges(self, pool: queue.SimpleQueue[RawHttp], asks: list[tuple[str, dict[str, str]]]) -> list[Exchange]:
        conn = pool.get()
        try:
            out = []
            for path, params in asks:
                request = conn.request(path, params)  # built before the clock starts
                t0 = time.perf_counter()
                _status, body, why = conn.get(request)
                out.append((path, (time.perf_counter() - t0) * 1000, body, why))
            return out
        finally:
            pool.put(conn)

    async def _run(self, pool: queue.SimpleQueue[RawHttp], asks: list[tuple[str, dict[str, str]]]) -> list[Exchange]:
        return await asyncio.get_running_loop().run_in_executor(self.threads, self._exchanges, pool, asks)

    def _fresh_call(self, params: dict[str, str]) -> list[Exchange]:
        requests = [request_bytes(self.questions_port, path, params) for path in QUESTIONS]
        t0 = time.perf_counter()
        conn = RawHttp(self.questions_port)
        try:
            out = []
            for path, request in zip(QUESTIONS, requests, strict=True):
                _status, body, why = conn.get(request)
                out.append((path, (time.perf_counter() - t0) * 1000, body, why))
                t0 = time.perf_counter()
            return out
        finally:
            conn.close()

    async def call(self, params: dict[str, str]) -> list[Exchange]:
        if self.fresh:
            return await asyncio.get_running_loop().run_in_executor(self.threads, self._fresh_call, params)
        return await self._run(self.calls, [(path, params) for path in QUESTIONS])

    async def probe(self, path: str) -> tuple[str, float]:
        got = (await self._run(self.probes, [(path, {})]))[0]
        return got[0], got[1]

    async def text(self, path: str) -> str:
        return (await self._run(self.probes, [(path, {})]))[0][2].decode()

    async def close(self) -> None:
        for conn in self.opened:
            conn.close()
        self.threads.shutdown(wait=True)


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
    from lookup import _preread, prepare_postgresql, prepare_sqlite, prewarm_postgresql

    trees = {"this": str(ROOT)} | ({"compare": args.compare} if args.compare else {})
    databases: dict[str, str] = {}
    if not args.skip_sqlite:
        databases["sqlite"] = await prepare_sqlite(args.size)
        await asyncio.to_thread(_preread, databases["sqlite"])  # in the OS cache, as on a server running a while
    pg = os.environ.get("CALLPOP_BENCH_PG_URL")
    if pg:
        databases["postgresql"] = await prepare_postgresql(pg, args.size)
        await prewarm_postgresql(databases["postgresql"])  # in the OS cache, like the SQLite file
    result: dict[str, Any] = {"clients": args.size, "rate_per_s": args.rate, "concurrency": args.concurrency,
                              "calls_per_round": args.calls, "rounds": args.rounds, "cache_seconds": args.cache_seconds,
                              "reads_in_thread": not args.reads_on_loop,
                              "prefetch": not args.no_prefetch, "cpus": os.cpu_count(), "trees": trees}
    clients = args.client.split(",")
    runs = [(name, code, client) for name, code in trees.items() for client in clients]
    result["clients_modes"] = clients
    for db, url in databases.items():
        per_run: dict[tuple[str, str], list[dict[str, Any]]] = {(name, client): [] for name, _c, client in runs}
        for r in range(args.rounds):
            for name, code, client in (runs if r % 2 == 0 else reversed(runs)):
                got = await _round(code, url, args.size, args, seed=1000 * r + 7, client=client)
                per_run[(name, client)].append(got)
                print(f"{db} {name} {client} round {r + 1}: load {got['load_1m']}  "
                      + "  ".join(f"{k} {v['p50']}/{v['p99']}" for k, v in got.items() if isinstance(v, dict))
                      + f"  cpu/call {got['cpu_per_call_ms']} ms  gc {got['gc_pauses']} max {got['gc_max_ms']} ms"
                      + f"  failed open {got['failed_open']}", file=sys.stderr)
        result[db] = {name: {client: _summary(per_run[(name, client)]) for client in clients} for name in trees}
    # what the PBX sees: curl's figures when they were measured
    judged = "raw" if "raw" in clients else clients[0]
    result["targets_met"] = {db: all(result[db]["this"][judged][q]["p99"] <= 2.0 for q in ("caller-name", "route"))
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
    parser.add_argument("--client", default="raw,aiohttp",
                        help="client modes, comma-separated: raw (a blocking socket, like curl), "
                             "raw-fresh (the same, a new connection per call), aiohttp")
    parser.add_argument("--compare", help="another checkout (e.g. a git worktree of main) measured alongside")
    parser.add_argument("--cache-seconds", type=float, default=5.0, help="[dialplan] cache_seconds of the server")
    parser.add_argument("--reads-on-loop", action="store_true",
                        help="[database] sqlite_reads_in_thread = false (the read blocks the loop)")
    parser.add_argument("--no-prefetch", action="store_true",
                        help="ask without call=, so no card lookup is started (the questions alone)")
    parser.add_argument("--rebuilding", action="store_true",
                        help="this tree's server reads a new copy of the directory in memory over and over during "
                             "the round (what the answers cost while a copy is read after a change; --compare "
                             "a worktree of the same commit for the answers without it)")
    parser.add_argument("--listen", action="store_true",
                        help="this tree's server also answers the questions on [dialplan] listen, and the raw "
                             "clients ask there (floor and /health stay on the web port)")
    parser.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL (CALLPOP_BENCH_PG_URL)")
    parser.add_argument("--profile", help="cProfile the server's event loop thread into PREFIX.*.prof files")
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
