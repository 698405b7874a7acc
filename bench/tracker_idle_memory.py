"""Memory held by channels whose Hangup never comes, before and after the idle sweep.

    .venv/bin/python bench/tracker_idle_memory.py [--calls 50000] [--rounds 5]

Each call is what the tracker keeps of an answered chan_pjsip call (trunk channel, agent
channel, ringing, answer, bridge) whose two Hangups are lost: 50,000 calls = 100,000
channels that would stay forever without the sweep. Figures: Python heap held by the
tracker (tracemalloc, after gc) and the process RSS, before feeding, after feeding, after
``CallTracker.sweep`` with the default bound; the sweep's duration (median and p99 over
--rounds fresh trackers) and that of its parts of 1,000 channels (what the AMI consumer
runs between two turns of the event loop). The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callpop.settings import Settings  # noqa: E402
from callpop.telephony.events import Ended  # noqa: E402
from callpop.telephony.tracker import CallTracker, TrackerConfig  # noqa: E402

IDLE = Settings().pbx.idle_channel_timeout
T0 = 1_800_000_000.0


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def feed_stuck_calls(tracker: CallTracker, calls: int) -> None:
    for i in range(calls):
        lid, phone = f"1795000000.{2 * i}", f"1795000000.{2 * i + 1}"
        agent = str(101 + i % 4)
        trunk = {"Channel": f"PJSIP/carrier-{2 * i:08x}", "Uniqueid": lid, "Linkedid": lid,
                 "CallerIDNum": f"+7916{i:07d}", "CallerIDName": f"Client {i}", "Exten": "74951112201"}
        dest = {"DestChannel": f"PJSIP/{agent}-{2 * i + 1:08x}", "DestUniqueid": phone, "DestLinkedid": lid}
        now = T0 + i * 0.01
        tracker.feed({"Event": "Newchannel", "ChannelStateDesc": "Ring", **trunk}, now)
        tracker.feed({"Event": "Newchannel", "Channel": dest["DestChannel"], "Uniqueid": phone, "Linkedid": lid,
                      "ChannelStateDesc": "Down", "CallerIDNum": agent}, now)
        tracker.feed({"Event": "DialBegin", **trunk, **dest, "DestChannelStateDesc": "Down",
                      "DestCallerIDNum": agent}, now)
        tracker.feed({"Event": "Newstate", "Channel": dest["DestChannel"], "Uniqueid": phone, "Linkedid": lid,
                      "ChannelStateDesc": "Up"}, now + 2)
        tracker.feed({"Event": "BridgeEnter", **trunk, "ChannelStateDesc": "Up", "BridgeUniqueid": f"b{i}"}, now + 2)


def heap_mib() -> float:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("callpop").setLevel(logging.ERROR)  # the sweep's warning, once a round
    config = TrackerConfig.from_settings(Settings())

    tracemalloc.start()
    tracker = CallTracker(config)
    base_heap, base_rss = heap_mib(), rss_mib()
    feed_stuck_calls(tracker, args.calls)
    fed_heap, fed_rss = heap_mib(), rss_mib()
    channels = len(tracker.book.channels)
    end = T0 + args.calls * 0.01 + 2 + IDLE + 1
    ended = sum(isinstance(e, Ended) and e.end_unseen for e in tracker.sweep(end, IDLE))
    swept_heap, swept_rss = heap_mib(), rss_mib()
    left = len(tracker.book.channels)
    tracemalloc.stop()
    del tracker
    gc.collect()

    durations, parts = [], []
    for _ in range(args.rounds):
        fresh = CallTracker(config)
        feed_stuck_calls(fresh, args.calls)
        t = time.perf_counter()
        chunks = fresh.sweep_chunks(end, IDLE)
        while True:
            t_part = time.perf_counter()
            if next(chunks, None) is None:
                break
            parts.append((time.perf_counter() - t_part) * 1000)
        durations.append((time.perf_counter() - t) * 1000)
    durations.sort()
    parts.sort()
    p99 = durations[min(len(durations) - 1, int(0.99 * len(durations)))]
    print(f"{channels} stuck channels: tracker heap +{fed_heap - base_heap:.1f} MiB, "
          f"after the sweep +{swept_heap - base_heap:.1f} MiB ({left} channels left, {ended} calls ended unseen)")
    print(json.dumps({
        "calls": args.calls, "channels": channels, "idle_channel_timeout_s": IDLE,
        "heap_before_mib": round(base_heap, 1), "heap_fed_mib": round(fed_heap, 1),
        "heap_after_sweep_mib": round(swept_heap, 1), "heap_held_by_stuck_mib": round(fed_heap - base_heap, 1),
        "heap_left_after_sweep_mib": round(swept_heap - base_heap, 1),
        "rss_before_mib": round(base_rss, 1), "rss_fed_mib": round(fed_rss, 1),
        "rss_after_sweep_mib": round(swept_rss, 1),
        "channels_left": left, "calls_ended_unseen": ended,
        "sweep_ms_p50": round(statistics.median(durations), 1), "sweep_ms_p99": round(p99, 1),
        "sweep_part_ms_p50": round(statistics.median(parts), 2), "sweep_part_ms_max": round(parts[-1], 2),
        "rounds": args.rounds, "loadavg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
