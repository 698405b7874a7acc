"""What the manager.conf event filter saves on the 50-call burst capture
(tests/fixtures/ami/pjsip/sip-10-burst-50.ami, recorded from Asterisk 22 with read = all).

    .venv/bin/python bench/ami_filter.py --rounds 9

Three streams of the same calls: as recorded (read = all), as a user with only
``read = call,agent`` gets it (events whose Privilege names another class removed), and
with deploy/manager.conf's ``eventfilter`` lines as well. For each: messages, bytes,
events per second over the capture's 13 s (its JSON-lines twin has the clock), and the
time callpop spends parsing and tracking it (``replay_bytes``: framing, parsing, the
tracker; median of --rounds). The call events are checked to be the same. Last line JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callpop.settings import Settings  # noqa: E402
from callpop.telephony.amitext import parse_message  # noqa: E402
from callpop.telephony.eventfilter import passes, used_events  # noqa: E402
from callpop.telephony.replay import replay_bytes  # noqa: E402

CAPTURE = ROOT / "tests" / "fixtures" / "ami" / "pjsip" / "sip-10-burst-50.ami"


def _classes(frame: bytes) -> set[str]:
    message = parse_message(frame)
    privilege = message.get("Privilege")
    return set(str(privilege).split(",")) - {"all"} if privilege else set()


def streams(data: bytes) -> dict[str, bytes]:
    head, sep, rest = data.partition(b"\r\n")
    frames = [f for f in rest.split(b"\r\n\r\n") if f.strip()]
    by_class = [f for f in frames if not _classes(f) or _classes(f) & {"call", "agent"}]
    events = used_events()
    filtered = [f for f in by_class if passes(parse_message(f), events)]

    def join(kept: list[bytes]) -> bytes:
        return head + sep + b"".join(f + b"\r\n\r\n" for f in kept)

    return {"read_all": join(frames), "read_call_agent": join(by_class), "eventfilter": join(filtered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    data = CAPTURE.read_bytes()
    lines = CAPTURE.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()
    span = json.loads(lines[-1])["t"] - json.loads(lines[0])["t"]
    settings = Settings()
    out: dict[str, object] = {"capture": CAPTURE.name, "seconds": round(span, 2)}
    reference = None
    for name, stream in streams(data).items():
        messages = stream.count(b"\r\n\r\n")
        times, events = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            events = [e.as_dict() for e in replay_bytes(stream, settings)]
            times.append((time.perf_counter() - t0) * 1000)
        if reference is None:
            reference = events
        assert events == reference, f"{name}: the tracker's call events differ"
        out[name] = {"messages": messages, "bytes": len(stream), "events_per_s": round(messages / span, 1),
                     "parse_track_ms": round(statistics.median(times), 2), "call_events": len(events)}
        print(f"{name}: {out[name]}", file=sys.stderr)
    full, cls, flt = (out[k] for k in ("read_all", "read_call_agent", "eventfilter"))
    assert isinstance(full, dict) and isinstance(cls, dict) and isinstance(flt, dict)
    out["saved_vs_read_all"] = round(1 - flt["messages"] / full["messages"], 3)
    out["saved_vs_read_call_agent"] = round(1 - flt["messages"] / cls["messages"], 3)
    out["cpu_saved_vs_read_call_agent"] = round(1 - flt["parse_track_ms"] / cls["parse_track_ms"], 3)
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
