"""The daemon's GC pacing: full collections wait for a quiet moment, but never too long."""

from __future__ import annotations

import gc

from callpop.gc_pacing import GcPacer


def test_full_collection_waits_for_quiet_then_is_forced() -> None:
    quiet = [0.0]
    pacer = GcPacer(lambda: quiet[0], quiet=1.0, full_min_interval=60, full_max_interval=180)
    start = pacer.last_full
    assert pacer.step(start + 30) == 1       # too soon
    assert pacer.step(start + 90) == 1       # due, but calls are coming in
    quiet[0] = 2.0
    assert pacer.step(start + 91) == 2       # due and quiet
    quiet[0] = 0.0
    assert pacer.step(start + 91 + 179) == 1
    assert pacer.step(start + 91 + 181) == 2  # overdue: forced even while busy
    assert pacer.full_runs == 2


async def test_run_disables_automatic_gc_and_restores_it() -> None:
    import asyncio

    assert gc.isenabled()
    pacer = GcPacer(lambda: 10.0, young_every=0.01)
    task = asyncio.create_task(pacer.run())
    await asyncio.sleep(0.05)
    assert not gc.isenabled()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert gc.isenabled()
