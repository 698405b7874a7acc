"""Two callpop instances, active-active: two ``callpop run`` processes on loopback, one
database, both logged in to the one simulated PBX (every event goes to each AMI session),
a 100-call burst, the first instance killed -9 mid-burst. The other was following every
call all along: the journal must be what one instance that never failed would have
written, and the desks on it must have popped every call, none twice (each call's
messages are made by both instances and relayed between them until the kill: one copy
reaches a tab). Counts only; bench/faults.py ``--only instance_killed`` prints the same
figures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callpop.settings import DatabaseSettings
from callpop.store.db import open_database
from tests.support.faults import Plan, Run
from tests.support.instances import Instances, instance_killed

pytestmark = pytest.mark.faults


@pytest.fixture
async def cluster(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Run, Instances]]:
    if not db_url.startswith("postgresql"):
        pytest.skip("several instances share a PostgreSQL server (docs/operations.md)")
    run = Run(db_url, tmp_path, Plan())
    db = await open_database(DatabaseSettings(url=db_url))
    try:
        await run.seed(db)
    finally:
        await db.close()
    await run.start_pbx()
    instances = Instances(run, 2)
    try:
        await instances.start()
        yield run, instances
    finally:
        await instances.stop()
        await run.close()


async def test_one_of_two_instances_killed_mid_burst_loses_and_doubles_nothing(
        cluster: tuple[Run, Instances]) -> None:
    run, instances = cluster
    assert run.pbx.clients == 2  # both follow the PBX
    result = await instance_killed(run, instances, desks=True)
    assert result["survivors"] == ["i1"], str(result)
    assert result["recorded"] == result["calls"] == run.plan.calls, str(result)  # no call lost
    assert result["foreign_rows"] == 0 and result["open_rows"] == 0, str(result)
    assert result["end_unseen"] == 0, str(result)  # every end was seen, by one instance or the other
    assert result["lost"] == 0 and result["extra"] == 0 and result["doubled"] == 0, str(result)
    assert result["talk_error_over_1s"] == 0 and result["times_out_of_order"] == 0, str(result)
    # a desk on each instance: the survivor's popped every call, no desk was sent one twice
    assert result["popped_on_survivor"] == run.plan.calls, str(result)
    assert result["popped_twice"] == 0, str(result)
