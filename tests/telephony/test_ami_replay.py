"""Every real capture, both flavours, replayed over a real TCP socket through panoramisk,
AmiConnection and the tracker: the call events must be exactly the expected ones (the
same as ``callpop replay`` gives), whatever the TCP chunking."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.ami import CaptureServer, Clock, Collector, DoneWatch, play, tracker
from tests.support.captures import expected
from tests.support.paths import FIXTURES

CAPTURES = sorted((FIXTURES / "ami").glob("*.ami")) + sorted((FIXTURES / "ami" / "pjsip").glob("*.ami"))


def _ids(p: Path) -> str:
    return p.stem


@pytest.mark.parametrize("capture", CAPTURES, ids=_ids)
async def test_capture_over_tcp_gives_the_expected_call_events(capture: Path) -> None:
    clock = Clock()
    server = CaptureServer(capture, clock, seed=len(capture.stem))
    sink = Collector()
    conn = await play(server, clock, DoneWatch(tracker()), sink, within=20)
    assert sink.dicts() == expected(capture.stem)
    assert conn.stats.handler_errors == 0 and conn.stats.sink_errors == 0
    assert conn.stats.reconnects == 0


def test_every_capture_has_expected_events() -> None:
    missing = [c.stem for c in CAPTURES if not (FIXTURES / "expected" / f"{c.stem}.jsonl").exists()]
    assert not missing
