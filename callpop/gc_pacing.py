"""Garbage collection paced by the calls, so a full collection never lands mid-pop.

CPython's automatic collector starts a full (generation 2) collection whenever enough
objects have survived, whatever is happening: with a thousand tabs connected that walk
takes tens to hundreds of milliseconds on a busy two-core server, and every card being
pushed at that moment waits for it. The daemon therefore switches automatic collection
off and runs it itself: the young generations ten times a second, and a full collection
only in a quiet moment (no call event for a second), or at the latest every few minutes
so memory held by reference cycles stays bounded.

Why ten times a second: a young collection walks what survived since the last one. At
100 calls/s, half a second of survivors took 10-14 ms of CPU per collection (20-30 ms on
the wall on a busy machine: a stall every pop behind it waited for); a tenth of a second
takes at most ~2.5 ms, for the same total (bench/pop_latency.py, ``gc_max_cpu_ms`` and
``gc_cpu_ms_total``). Leaving the young generations to CPython's automatic collector
(every ~700 new objects) made pauses short too, but doubled the collector's total CPU.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

__all__ = ["GcPacer"]

log = logging.getLogger(__name__)


class GcPacer:
    """Runs the collector on a schedule; ``quiet_for()`` says how long no call event came."""

    def __init__(self, quiet_for: Callable[[], float], *, young_every: float = 0.1, quiet: float = 1.0,
                 full_min_interval: float = 60.0, full_max_interval: float = 180.0) -> None:
        self._quiet_for = quiet_for
        self._young_every = young_every
        self._quiet = quiet
        self._full_min = full_min_interval
        self._full_max = full_max_interval
        self.last_full = time.monotonic()
        self.full_runs = 0
        self.full_max_pause = 0.0
        self.young_max_pause = 0.0

    async def run(self) -> None:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            while True:
                await asyncio.sleep(self._young_every)
                self.step(time.monotonic())
        finally:
            if was_enabled:
                gc.enable()

    def step(self, now: float) -> int:
        """One round: young generations always; everything when due. Returns the
        generation collected."""
        since_full = now - self.last_full
        quiet = self._quiet_for() >= self._quiet
        generation = 2 if (since_full >= self._full_max or (since_full >= self._full_min and quiet)) else 1
        started = time.perf_counter()
        gc.collect(generation)
        pause = time.perf_counter() - started
        if generation == 2:
            self.last_full = now
            self.full_runs += 1
            self.full_max_pause = max(self.full_max_pause, pause)
            log.debug("gc: full collection in %.1f ms (%s)", pause * 1000, "quiet" if quiet else "overdue")
        else:
            self.young_max_pause = max(self.young_max_pause, pause)
        return generation
