"""AMI events per second: the tracker alone, the full TCP path, and panoramisk's own parsing.

    .venv/bin/python bench/ami_throughput.py [--rounds 7] [--chunk 65536]

Input: the two 50-call burst captures (``tests/fixtures/ami/10-burst-50.ami``, Local
channels, 4,962 events, and ``pjsip/sip-10-burst-50.ami``, 3,248 events). Three figures,
measured in the same run, each over several rounds (median and p99 of the rounds; p99 is
the rate of the slow rounds):

1. tracker: ``CallTracker.feed`` over the already parsed messages (fresh tracker a round);
2. full path: a local TCP server writes the capture bytes (``--chunk`` bytes per write) to
   an ``AmiConnection`` logged in to it; panoramisk + our byte framing, the queue, the one
   consumer and the tracker; timed from the first byte written to the last message fed;
3. floor: panoramisk 1.4's own ``AMIProtocol.data_received`` on the same chunks, no
   tracker (the parsing every panoramisk user pays).

Targets: tracker >= 30,000 events/s; full path >= half the parse-only rate.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from panoramisk.ami_protocol import AMIProtocol  # noqa: E402

from callpop.settings import AmiSettings, Settings  # noqa: E402
from callpop.telephony.amitext import AmiMessage, iter_messages  # noqa: E402
from callpop.telephony.connection import AmiConnection  # noqa: E402
from callpop.telephony.events import CallEvent  # noqa: E402
from callpop.telephony.protocol import AmiFramer, parse_message  # noqa: E402
from callpop.telephony.tracker import CallTracker, TrackerConfig  # noqa: E402

CAPTURES = [ROOT / "tests/fixtures/ami/10-burst-50.ami", ROOT / "tests/fixtures/ami/pjsip/sip-10-burst-50.ami"]
DONE = b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: bench-done\r\n\r\n"


def _summary(rates_of_rounds: list[float]) -> tuple[float, float]:
    """(median rate, rate of the p99 slowest round)."""
    ordered = sorted(rates_of_rounds, reverse=True)
    p99_index = min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)
    return statistics.median(ordered), ordered[p99_index]


class Capture:
    def __init__(self, path: Path, chunk: int) -> None:
        data = path.read_bytes()
        _banner, _, self.body = data.partition(b"\r\n")
        self.count = len(AmiFramer().feed(self.body))
        self.chunks = [self.body[i:i + chunk] for i in range(0, len(self.body), chunk)]
        self.messages = list(iter_messages(path.with_suffix(".jsonl").read_bytes()))
        assert len(self.messages) == self.count, (path, len(self.messages), self.count)


def new_tracker() -> CallTracker:
    return CallTracker(TrackerConfig.from_settings(Settings()))


def bench_tracker(cap: Capture) -> float:
    tracker = new_tracker()
    feed = tracker.feed
    t0 = time.perf_counter()
    for msg, clock in cap.messages:
        feed(msg, clock)
    return cap.count / (time.perf_counter() - t0)


class _NoDispatch:
    """What panoramisk's protocol needs of its Manager when nobody registered callbacks."""

    forgetable_actions = ("ping", "login")

    def __init__(self) -> None:
        self.awaiting_actions: list[Any] = []

    def dispatch(self, message: Any) -> list[str]:
        return []

    def connection_lost(self, exc: Any) -> None:
        pass


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def bench_panoramisk(cap: Capture) -> float:
    proto = AMIProtocol()
    proto.connection_made(_NullTransport())
    proto.factory = _NoDispatch()
    proto.encoding = "utf8"
    t0 = time.perf_counter()
    for chunk in cap.chunks:
        proto.data_received(chunk)
    return cap.count / (time.perf_counter() - t0)


def bench_framing(cap: Capture) -> float:
    """Our framing + parsing alone (for the record: where the full path's time goes)."""
    framer = AmiFramer()
    t0 = time.perf_counter()
    n = 0
    for chunk in cap.chunks:
        for block in framer.feed(chunk):
            parse_message(block.decode("utf-8", "replace"))
            n += 1
    return n / (time.perf_counter() - t0)


class _Watch:
    def __init__(self, tracker: CallTracker) -> None:
        self.tracker = tracker
        self.done = asyncio.Event()
        self.at = 0.0

    def feed(self, message: AmiMessage, now: float | None = None) -> list[CallEvent]:
        if message.get("UserEvent") == "bench-done":
            self.at = time.perf_counter()
            self.done.set()
        return self.tracker.feed(message, now)


class _Server:
    """Answers the handshake like Asterisk, then writes the capture when told to."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.go = asyncio.Event()
        self.started = 0.0

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        framer = AmiFramer()
        try:
            while data := await reader.read(65536):
                for block in framer.feed(data):
                    msg = parse_message(block.decode())
                    aid, action = msg.get("ActionID", ""), str(msg.get("Action", "")).lower()
                    if action == "challenge":
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\nChallenge: 1\r\n\r\n".encode())
                    elif action == "login":
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: ok\r\n\r\n".encode())
                    elif action == "coreshowchannels":
                        writer.write((f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
                                      f"Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\n"
                                      "EventList: Complete\r\nListItems: 0\r\n\r\n").encode())
                        await writer.drain()
                        await self.go.wait()
                        self.started = time.perf_counter()
                        for chunk in self.cap.chunks:
                            writer.write(chunk)
                            await writer.drain()
                        writer.write(DONE)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def bench_full_path(cap: Capture) -> float:
    server = _Server(cap)
    srv = await asyncio.start_server(server.client, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    watch = _Watch(new_tracker())

    async def sink(events: Sequence[CallEvent]) -> None:
        return None

    settings = AmiSettings(host="127.0.0.1", port=port, ping_interval=60, pong_timeout=30, queue_warn=10**9)
    conn = AmiConnection(settings, watch, sink)
    task = asyncio.create_task(conn.run())
    for _ in range(10_000):  # logged in and resynchronised: the clock starts after that
        if conn.stats.resyncs >= 1:
            break
        await asyncio.sleep(0.001)
    server.go.set()
    await watch.done.wait()
    rate = cap.count / (watch.at - server.started)
    await conn.stop()
    await task
    srv.close()
    await srv.wait_closed()
    return rate


def _full(loop: asyncio.AbstractEventLoop, cap: Capture) -> float:
    return loop.run_until_complete(bench_full_path(cap))


def run_rounds(name: str, rounds: int, fn: Callable[[], float]) -> list[float]:
    fn()  # warm-up (imports, caches, phonenumbers)
    out = [fn() for _ in range(rounds)]
    print(f"  {name:<28} " + " ".join(f"{r:>9,.0f}" for r in out), file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--chunk", type=int, default=65536, help="bytes per TCP write / data_received call")
    args = ap.parse_args()
    caps = [Capture(p, args.chunk) for p in CAPTURES]
    results: dict[str, Any] = {}
    loop = asyncio.new_event_loop()
    per_kind: dict[str, list[float]] = {"tracker": [], "full_path": [], "panoramisk_parse": [], "callpop_parse": []}
    for cap, path in zip(caps, CAPTURES, strict=True):
        print(f"{path.name}: {cap.count} AMI messages, {len(cap.body):,} bytes, rates in events/s", file=sys.stderr)
        per_kind["tracker"] += run_rounds("tracker.feed", args.rounds, functools.partial(bench_tracker, cap))
        per_kind["panoramisk_parse"] += run_rounds("panoramisk data_received", args.rounds,
                                                   functools.partial(bench_panoramisk, cap))
        per_kind["callpop_parse"] += run_rounds("callpop framing+parse", args.rounds,
                                                functools.partial(bench_framing, cap))
        per_kind["full_path"] += run_rounds("full TCP path", args.rounds,
                                            functools.partial(_full, loop, cap))
    loop.close()
    for kind, rates in per_kind.items():
        med, p99 = _summary(rates)
        results[f"{kind}_events_per_s"] = round(med)
        results[f"{kind}_events_per_s_p99"] = round(p99)
    results["full_over_parse"] = round(results["full_path_events_per_s"] / results["panoramisk_parse_events_per_s"], 3)
    results["rounds"] = args.rounds
    results["chunk_bytes"] = args.chunk
    results["messages"] = [c.count for c in caps]
    results["python"] = platform.python_version()
    results["cpus"] = os.cpu_count()
    results["loadavg_1m"] = round(os.getloadavg()[0], 2)
    results["targets_met"] = (results["tracker_events_per_s"] >= 30_000 and results["full_over_parse"] >= 0.5)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
