"""What the journal writer queues: one job per write, what closing a call returns, and
which failures mean the database is away (keep the write) rather than a row it refuses."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import exc as sa_exc

from callpop.telephony.events import Answered, Ended, Ringing

__all__ = ["MAX_BATCH", "Closed", "Job", "Kind", "unavailable"]

MAX_BATCH = 100
_DOWN = (OSError, TimeoutError, sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)


@dataclass(frozen=True, slots=True)
class Closed:
    """What closing a call wrote: its calls.id and the employees whose counted contacts it
    touched (they get ``kpi_changed``)."""

    call_id: int
    counted_employees: tuple[int, ...]
    # False: the row had this end already (another instance, a replay): nothing was written
    written: bool = True


Kind = Literal["open", "rang", "client", "answer", "close", "sweep"]


@dataclass(eq=False)
class Job:
    kind: Kind
    event: Ringing | Answered | Ended | None
    client_id: int | None
    live: frozenset[str] = frozenset()  # sweep: call keys still followed
    before: dt.datetime | None = None  # sweep: only rows started before this
    scope: str | None = None  # sweep: only the calls of this PBX (journal_recovery.in_scope)
    resolve: bool = False  # close: the call's lookup failed; find its client when writing
    spool_id: int | None = None  # its copy in the spool, written ahead of the database
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def unavailable(exc: BaseException) -> bool:
    """The database did not take the write for reasons of its own (down, restarting,
    locked, read-only, too slow), as opposed to a row it refuses: worth keeping and retrying.
    PostgreSQL says so with SQLSTATE class 08 (connection) or 57P (shutting down, starting)."""
    if isinstance(exc, _DOWN):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        for cause in (exc.orig, getattr(exc.orig, "__cause__", None)):
            state = str(getattr(cause, "sqlstate", "") or "")
            if state.startswith(("08", "57P")):
                return True
    return False
