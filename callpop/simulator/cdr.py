"""The simulated PBX's CDR backend: call detail records written as cdr_pgsql or
cdr_sqlite3_custom would, from the calls the simulator really played.

One row per dial segment with Asterisk's standard columns (``calldate``, ``clid``, ``src``,
``dst``, ``dcontext``, ``channel``, ``dstchannel``, ``lastapp``, ``lastdata``,
``duration``, ``billsec``, ``disposition``, ``amaflags``, ``accountcode``, ``uniqueid``,
``userfield``, ``peeraccount``, ``linkedid``, ``sequence``), written when the call's last
step is played (Asterisk writes a CDR when its Party A's chain ends). Times are whole
seconds as Asterisk stores them: ``calldate`` truncated, ``duration`` and ``billsec``
floored. Party A is the channel that started the call (the trunk's for an inbound call,
the agent's for an outbound one); its Uniqueid is the call's Linkedid. A ring group writes
a row per member that rang (the ones who lost the race ``NO ANSWER``, ended at the
answer). A queue answers the caller itself, so its rows are answered at their start (the
agent's answer is not in them), as Asterisk's are. Transfers and click-to-call are not
written (their segments are not modelled here); a call cut by ``stop()`` writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from callpop.simulator.scenario import CHAN

if TYPE_CHECKING:
    from callpop.simulator.pbx import _Call

__all__ = ["CdrWriter", "cdr_rows"]

log = logging.getLogger(__name__)

WRITTEN = frozenset(("incoming_answered", "incoming_noanswer", "caller_hangup", "ring_group", "outbound",
                     "queue_answered", "queue_abandoned"))


def cdr_table(name: str = "cdr") -> Table:
    """Asterisk's cdr table (contrib/ast-db-manage's columns, cdr_pgsql's types)."""
    return Table(
        name, MetaData(),
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("calldate", DateTime, nullable=False),
        *(Column(c, String(80), nullable=False, server_default="") for c in (
            "clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata")),
        Column("duration", Integer, nullable=False, server_default="0"),
        Column("billsec", Integer, nullable=False, server_default="0"),
        Column("disposition", String(45), nullable=False, server_default=""),
        Column("amaflags", Integer, nullable=False, server_default="0"),
        Column("accountcode", String(20), nullable=False, server_default=""),
        Column("uniqueid", String(150), nullable=False, server_default="", index=True),
        Column("userfield", String(255), nullable=False, server_default=""),
        Column("peeraccount", String(20), nullable=False, server_default=""),
        Column("linkedid", String(150), nullable=False, server_default="", index=True),
        Column("sequence", Integer, nullable=False, server_default="0"),
    )


def cdr_rows(call: _Call, epoch_of: Any, speed: float, sequence: int) -> list[dict[str, Any]]:
    """The CDR rows of a call played to its end. *epoch_of*: loop time -> epoch seconds."""
    tpl = call.template
    spec = tpl.spec
    if spec.name not in WRITTEN:
        return []
    steps = tpl.steps

    def at(i: int) -> float:
        return float(epoch_of(call.start + call.delay(i, steps[i].at) / speed))

    chans: dict[Any, str] = {}
    for (kind, arg), value in zip(tpl.slots, call.values, strict=True):
        if kind == CHAN:
            chans.setdefault(arg[1], value)
    trunk = next((v for role, v in chans.items() if not isinstance(role, int)), "")
    start, end = at(0), at(len(steps) - 1)
    answer = at(tpl.talk_span[0]) if tpl.talk_span is not None else None
    client = call.values[next(i for i, (k, _) in enumerate(tpl.slots) if k == "client")] \
        if any(k == "client" for k, _ in tpl.slots) else ""
    queue = spec.name.startswith("queue_")
    rows: list[dict[str, Any]] = []

    def row(channel: str, dst: str, dstchannel: str, answered_at: float | None, until: float,
            src: str, lastapp: str) -> None:
        if queue and answered_at is not None:
            answered_at = start  # the queue answered the caller: CDR answer = the record's start
        rows.append({
            "calldate": dt.datetime.fromtimestamp(int(start), dt.UTC).replace(tzinfo=None),
            "clid": f'"" <{src}>', "src": src, "dst": dst,
            "dcontext": "from-internal" if spec.direction == "outbound" else "from-pstn",
            "channel": channel, "dstchannel": dstchannel, "lastapp": lastapp,
            "lastdata": f"{dstchannel.rsplit('-', 1)[0]},30" if dstchannel else "",
            "duration": int(until - start),
            "billsec": int(until - answered_at) if answered_at is not None else 0,
            "disposition": "ANSWERED" if answered_at is not None else "NO ANSWER",
            "amaflags": 3, "accountcode": "", "uniqueid": call.linkedid, "userfield": "", "peeraccount": "",
            "linkedid": call.linkedid, "sequence": sequence + len(rows)})

    if spec.direction == "outbound":
        row(chans.get(0, ""), client, trunk, answer, end, call.agents[0], "Dial")
        return rows
    lastapp = "Queue" if queue else "Dial"
    if spec.name == "queue_abandoned":
        row(trunk, "s", "", None, end, client, lastapp)
        return rows
    for role in range(len(spec.roles)):
        agent_chan = chans.get(role)
        if agent_chan is None:
            continue
        won = role == 0 and answer is not None
        until = end if won or answer is None else answer  # the others stopped ringing at the answer
        row(trunk, call.agents[role] if role < len(call.agents) else spec.roles[role], agent_chan,
            answer if won else None, until, client, lastapp)
    return rows


class CdrWriter:
    """Writes the simulator's CDR rows into a database (``url``: SQLAlchemy async), creating
    the table when it is missing; one background task, in batches, off the PBX's path."""

    def __init__(self, url: str, table: str = "cdr") -> None:
        self.url = url
        self.table = cdr_table(table)
        self.written = 0
        self._engine: AsyncEngine | None = None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        parsed = make_url(self.url)
        self._engine = create_async_engine(parsed)
        async with self._engine.begin() as conn:
            await conn.run_sync(self.table.metadata.create_all)
        self._task = asyncio.create_task(self._run(), name="simulator-cdr")

    def record(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            self._queue.put_nowait(r)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def flush(self) -> None:
        await self._queue.join()

    async def close(self) -> None:
        if self._task is not None:
            await self.flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def _run(self) -> None:
        assert self._engine is not None
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(self.table.insert(), batch)
                self.written += len(batch)
            except Exception:
                log.exception("simulated PBX: %d CDR rows not written", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
