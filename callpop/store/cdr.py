"""The PBX's own record of past calls: its CDR table, read (never written) by callpop.

AMI tells only the present: after a restart callpop cannot learn from it when a call it
did not follow was answered or ended. Asterisk's CDR backends (cdr_pgsql,
cdr_adaptive_odbc into PostgreSQL or MySQL, FreePBX's ``asteriskcdrdb.cdr``,
cdr_sqlite3_custom into an SQLite file) keep one row per dial segment of every call:
``calldate`` (the segment's start), ``duration`` (start to end, s), ``billsec`` (answer to
end, s), ``disposition``, Party A's ``channel`` and ``uniqueid``, Party B's ``dstchannel``,
the call's ``linkedid`` and the row's ``sequence``. The table and column names are
``[cdr]`` settings (Asterisk's names by default); callpop/store/cdr_reconcile.py makes
call times out of them.

``calldate`` is the PBX's wall clock, local time without a zone on most backends: only
differences between the rows of one call are ever used, never the value itself.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, column, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from callpop.settings import CdrSettings

__all__ = ["CdrRow", "CdrSource", "cdr_url", "safe_url"]

log = logging.getLogger(__name__)

CHUNK = 200  # keys per query: well under every backend's limit on bound parameters


@dataclass(frozen=True, slots=True)
class CdrRow:
    """One CDR row (one dial segment), as the PBX wrote it."""

    start: dt.datetime  # calldate: the PBX's clock, naive
    duration: int  # start to end, seconds
    billsec: int  # answer to end, seconds (0: not answered)
    disposition: str  # ANSWERED | NO ANSWER | BUSY | FAILED | CONGESTION
    channel: str  # Party A
    dstchannel: str  # Party B ('' when none)
    uniqueid: str  # Party A's
    linkedid: str  # the call's ('' when the table has no such column)
    sequence: int = 0

    @property
    def answered(self) -> bool:
        return self.disposition.strip().upper() == "ANSWERED"

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.duration)

    @property
    def answer(self) -> dt.datetime | None:
        """calldate + duration - billsec: the answer, on the same clock as the start."""
        return self.end - dt.timedelta(seconds=self.billsec) if self.answered else None


def cdr_url(settings: CdrSettings) -> str:
    """The URL with ``[cdr] password`` (or CALLPOP_CDR_PASSWORD) put in, if one is set."""
    if not settings.password:
        return settings.url
    return make_url(settings.url).set(password=settings.password).render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """For logs: the URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<an unreadable URL>"


def _moment(value: Any) -> dt.datetime:
    """A calldate as a naive datetime (a backend may give text, a naive or an aware value)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.strip())
    if not isinstance(value, dt.datetime):
        raise ValueError(f"calldate {value!r} is not a date and time")
    moment: dt.datetime = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _seconds(value: Any) -> int:
    return 0 if value is None or value == "" else int(float(value))


class CdrSource:
    """Reads CDR rows by the calls' Linkedids (or Uniqueids) from the configured table.

    Its own small engine: the CDR database is the PBX's, not callpop's (often another
    server, a read-only user)."""

    def __init__(self, settings: CdrSettings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or _engine(cdr_url(settings))
        schema, _, name = settings.table.rpartition(".")
        names = {"start": settings.calldate_column, "duration": settings.duration_column,
                 "billsec": settings.billsec_column, "disposition": settings.disposition_column,
                 "channel": settings.channel_column, "dstchannel": settings.dstchannel_column,
                 "uniqueid": settings.uniqueid_column, "linkedid": settings.linkedid_column,
                 "sequence": settings.sequence_column}
        self._names = {field: col for field, col in names.items() if col}
        self._table = table(name, *(column(col) for col in self._names.values()), schema=schema or None)

    async def close(self) -> None:
        await self.engine.dispose()

    def _col(self, field: str) -> ColumnElement[Any]:
        return self._table.c[self._names[field]]

    async def rows_of(self, keys: Iterable[str]) -> dict[str, list[CdrRow]]:
        """Call key (Linkedid) -> its CDR rows in the PBX's order. Rows are found by
        ``linkedid``; a key with none is looked for as a ``uniqueid`` (tables without a
        linkedid column, or a call whose Party A's Uniqueid is its id)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, list[CdrRow]] = {}
        if "linkedid" in self._names:
            for row in await self._select("linkedid", wanted):
                found.setdefault(row.linkedid, []).append(row)
        rest = [k for k in wanted if k not in found]
        if rest:
            for row in await self._select("uniqueid", rest):
                found.setdefault(row.uniqueid, []).append(row)
        for rows in found.values():
            rows.sort(key=lambda r: (r.start, r.sequence))
        return found

    async def _select(self, field: str, keys: Sequence[str]) -> list[CdrRow]:
        fields = list(self._names)
        out: list[CdrRow] = []
        async with self.engine.connect() as conn:
            for i in range(0, len(keys), CHUNK):
                stmt = select(*(self._col(f) for f in fields)).where(self._col(field).in_(keys[i:i + CHUNK]))
                for raw in (await conn.execute(stmt)).all():
                    values = dict(zip(fields, raw, strict=True))
                    try:
                        out.append(CdrRow(
                            start=_moment(values["start"]), duration=_seconds(values.get("duration")),
                            billsec=_seconds(values.get("billsec")),
                            disposition=str(values.get("disposition") or ""),
                            channel=str(values.get("channel") or ""), dstchannel=str(values.get("dstchannel") or ""),
                            uniqueid=str(values.get("uniqueid") or ""), linkedid=str(values.get("linkedid") or ""),
                            sequence=_seconds(values.get("sequence"))))
                    except (ValueError, TypeError) as exc:
                        log.warning("cdr: a row of %s %s is not usable (%s); left out", field,
                                    values.get(field), exc)
        return out


def _engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # the PBX writes the file; a busy writer is waited for, never blocked by callpop
        return create_async_engine(parsed, connect_args={"timeout": 5})
    return create_async_engine(parsed, pool_size=1, max_overflow=1, pool_pre_ping=True)
