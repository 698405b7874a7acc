"""``callpop replay FILE``: a recorded AMI stream through the daemon's tracker, call events out.

One JSON object per line per call event, in order, exactly the public ``as_dict()`` form.
The JSON-lines captures carry a clock (``t``/``wall``), which gives exact talk seconds;
raw AMI text has none (see :mod:`callpop.telephony.tracker` for what talk time is then).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from callpop.settings import Settings
from callpop.telephony.amitext import StreamFormatError, iter_messages
from callpop.telephony.events import CallEvent
from callpop.telephony.tracker import CallTracker, TrackerConfig

__all__ = ["main", "replay_bytes"]


class _Skipped:
    def __init__(self) -> None:
        self.count = 0
        self.cut_bytes = 0  # bytes of a last message cut off without its blank line

    def __call__(self, _reason: str) -> None:
        self.count += 1

    def truncated(self, size: int) -> None:
        self.cut_bytes = size


def replay_bytes(data: bytes, settings: Settings, on_malformed: _Skipped | None = None
                 ) -> Iterator[CallEvent]:
    """Every call event of a recorded stream, in order (raises StreamFormatError)."""
    tracker = CallTracker(TrackerConfig.from_settings(settings))
    skipped = on_malformed or _Skipped()
    before = 0
    for message, clock in iter_messages(data, skipped, skipped.truncated):
        yield from tracker.feed(message, clock)
        if tracker.malformed != before:
            skipped.count += tracker.malformed - before
            before = tracker.malformed


def main(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    stdout = out or sys.stdout
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"replay: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    skipped = _Skipped()
    try:
        for event in replay_bytes(data, settings, skipped):
            stdout.write(json.dumps(event.as_dict(), ensure_ascii=False) + "\n")
    except StreamFormatError as exc:
        print(f"replay: {path} is not an AMI stream: {exc}", file=sys.stderr)
        return 1
    stdout.flush()
    if skipped.count:
        print(f"replay: skipped {skipped.count} malformed messages", file=sys.stderr)
    if skipped.cut_bytes:
        print(f"replay: the stream ends in the middle of a message; ignored {skipped.cut_bytes} bytes",
              file=sys.stderr)
    return 0
