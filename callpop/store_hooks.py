"""The store functions the call pipeline and the journal writer call, as one replaceable set.

The application uses the real ones (``StoreHooks.default()``); tests pass counting or failing
ones to see what the pipeline does when the database is slow or refuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from callpop.cards import LookupResult
from callpop.settings import Settings
from callpop.telephony.events import Ended, Ringing

__all__ = ["ByExtensionFn", "CloseCallFn", "LogContactsFn", "LookupFn", "OpenCallFn", "StoreHooks"]

LookupFn = Callable[[AsyncSession, str, Settings], Awaitable[LookupResult]]
OpenCallFn = Callable[[AsyncSession, str, Ringing, int | None], Awaitable[int]]
# None: the call's end was journalled already (store/journal.close_call)
CloseCallFn = Callable[[AsyncSession, str, Ended, int | None, dict[str, int]], Awaitable[int | None]]
ByExtensionFn = Callable[[AsyncSession], Awaitable[dict[str, int]]]


class LogContactsFn(Protocol):
    """store.contacts.log_contacts: *by_extension* is the writer's cached extension map."""

    def __call__(self, session: AsyncSession, call_id: int, ended: Ended, settings: Settings, *,
                 by_extension: Mapping[str, int] | None = None) -> Awaitable[Sequence[Any]]: ...


@dataclass(frozen=True)
class StoreHooks:
    """The store functions the pipeline calls (tests pass counting or failing ones)."""

    lookup: LookupFn
    open_call: OpenCallFn
    close_call: CloseCallFn
    employees_by_extension: ByExtensionFn
    log_contacts: LogContactsFn | None
    # answers and ringing agents recorded as they happen, rows nobody follows closed
    # (callpop/store/journal_recovery.py); off for stand-in open/close functions
    recovery: bool = False

    @classmethod
    def default(cls) -> StoreHooks:
        from callpop.store import directory, employees, journal
        from callpop.store.kpi import contacts

        return cls(lookup=directory.lookup, open_call=journal.open_call, close_call=journal.close_call,
                   employees_by_extension=employees.employees_by_extension, log_contacts=contacts.log_contacts,
                   recovery=True)
