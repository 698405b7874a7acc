"""``callpop import KIND FILE``: clients, agreements, promises, payments and receivables
from the CSV files 1C and spreadsheets export (columns: docs/import.md).

Lines are read, checked and stored in chunks, one transaction each, with a fixed number
of queries per chunk, so 100k lines take seconds, not a query per line. A bad line is
reported with its number and reason and the good lines still go in; every record is
keyed by its external id, so importing the same file again changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import Settings
from callpop.store import audit
from callpop.store.db import Database, SchemaError, open_database
from callpop.store.imports.base import ChunkResult, ImportContext, LineProblem
from callpop.store.imports.clients import ClientLine, parse_client, store_clients
from callpop.store.imports.csvfields import LineError
from callpop.store.imports.csvread import FileError, Row, read_csv
from callpop.store.imports.sales import RECORD_KINDS, RecordLine, store_records

__all__ = ["KINDS", "ImportReport", "LineProblem", "import_file", "main"]

log = logging.getLogger(__name__)

KINDS = ("clients", "agreements", "promises", "payments", "receivables")
CHUNK = 1000
# the audit trail's entity for each kind of file
IMPORT_ENTITY = {"clients": "client", "agreements": "agreement", "promises": "promise", "payments": "payment",
                 "receivables": "receivable"}
RECOMPUTE_ONE_BY_ONE = 300
_SHOWN_PROBLEMS = 20

Line = ClientLine | RecordLine


@dataclass(slots=True)
class ImportReport:
    """What an import did: counts, and every skipped line (errors) or line imported with a
    caveat (warnings, e.g. a phone kept raw), each with its line number."""

    kind: str
    path: str
    encoding: str = ""
    delimiter: str = ""
    header_line: int = 1
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[LineProblem] = field(default_factory=list)
    warnings: list[LineProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    fatal: str | None = None

    @property
    def skipped(self) -> int:
        return len(self.errors)

    @property
    def ok(self) -> bool:
        """Something in the file was usable (a re-import that changes nothing is fine)."""
        return self.fatal is None and self.imported + self.updated + self.unchanged > 0

    def summary(self) -> str:
        if self.fatal is not None:
            return f"{self.path}: {self.fatal}"
        text = (f"imported {self.imported}, updated {self.updated}, unchanged {self.unchanged}, "
                f"skipped {self.skipped}")
        if self.errors:
            shown = "; ".join(str(p) for p in self.errors[:_SHOWN_PROBLEMS])
            more = f"; and {len(self.errors) - _SHOWN_PROBLEMS} more" if len(self.errors) > _SHOWN_PROBLEMS else ""
            text += f" ({shown}{more})"
        if self.warnings:
            text += f"; {len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}"
        return text

    def _merge(self, chunk: ChunkResult) -> None:
        self.imported += chunk.imported
        self.updated += chunk.updated
        self.unchanged += chunk.unchanged
        self.errors += chunk.errors
        self.warnings += chunk.warnings


def _parse(kind: str, row: Row, ctx: ImportContext) -> Line:
    if kind == "clients":
        return parse_client(row, ctx)
    return RECORD_KINDS[kind].parse(row, ctx)


async def _store(session: AsyncSession, kind: str, lines: list[Line], ctx: ImportContext) -> ChunkResult:
    if kind == "clients":
        return await store_clients(session, [ln for ln in lines if isinstance(ln, ClientLine)], ctx)
    spec = RECORD_KINDS[kind]
    return await store_records(session, spec, [ln for ln in lines if isinstance(ln, RecordLine)], ctx)


async def _recompute(db: Database, client_ids: set[int], ctx: ImportContext) -> None:
    """Paid agreements decide who is a regular client: apply the rule to the clients whose
    agreements or payments changed (to everyone at once when that is most of a big file)."""
    from callpop.store.records.regular import recompute_all, recompute_status
    async with db.sessions() as session, session.begin():
        if len(client_ids) > RECOMPUTE_ONE_BY_ONE:
            await recompute_all(session, ctx.settings, ctx.now)
            return
        for client_id in sorted(client_ids):
            try:
                await recompute_status(session, client_id, ctx.settings, ctx.now)
            except LookupError:  # deleted meanwhile: nothing to decide
                continue


def audit_text(report: ImportReport, actor: str | None) -> str:
    """The audit row's text: the file, who ran it and what changed in numbers (a row per
    changed record would flood the trail on a 100k-line file)."""
    changed = report.imported + report.updated
    what = "nothing changed" if changed == 0 else f"{changed} record(s) changed"
    by = f" by {actor}" if actor else ""
    return (f"{Path(report.path).name}{by}: {what}: inserted {report.imported}, updated {report.updated}, "
            f"unchanged {report.unchanged}, skipped {report.skipped}")


async def _audit(db: Database, report: ImportReport, actor: str | None) -> None:
    """One row per import run, entity = the kind's record (payment, client, ...)."""
    async with db.sessions() as session, session.begin():
        audit.record(session, IMPORT_ENTITY[report.kind], None, {"import": (None, audit_text(report, actor))},
                     employee_id=None, client_id=None, source="import")


async def _flush(db: Database, kind: str, lines: list[Line], ctx: ImportContext, report: ImportReport) -> None:
    """Store a chunk in one transaction; if the database refuses it, store its lines one by
    one so only the offending line is lost (and reported)."""
    if not lines:
        return
    try:
        async with db.sessions() as session, session.begin():
            result = await _store(session, kind, lines, ctx)
    except (IntegrityError, DataError) as exc:  # this data, not the database: find the line
        if len(lines) == 1:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
            report.errors.append(LineProblem(lines[0].line, f"the database refused the line: {reason}"))
            log.warning("import %s line %d refused: %s", kind, lines[0].line, reason)
            return
        log.info("import %s: chunk of %d lines refused, retrying line by line", kind, len(lines))
        for line in lines:
            await _flush(db, kind, [line], ctx, report)
        return
    ctx.clients.update(result.resolved_clients)
    ctx.touched_clients |= result.touched_clients
    report._merge(result)


async def import_file(db: Database, kind: str, path: Path, settings: Settings, *,
                      now: dt.datetime | None = None, chunk_size: int = CHUNK,
                      actor: str | None = None) -> ImportReport:
    """Import *path* as *kind*; never raises for bad data: the report says what happened.
    A file that was read leaves one audit row with its counts (*actor*: who ran it)."""
    report = ImportReport(kind=kind, path=str(path))
    if kind not in KINDS:
        report.fatal = f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})"
        return report
    try:
        data = await asyncio.to_thread(Path(path).read_bytes)
        csv_file = await asyncio.to_thread(read_csv, data, kind)
    except OSError as exc:
        report.fatal = f"cannot read the file: {exc.strerror or exc}"
        return report
    except FileError as exc:
        report.fatal = str(exc)
        return report
    report.encoding, report.delimiter = csv_file.encoding, csv_file.delimiter
    report.header_line = csv_file.header_line
    report.ignored_columns = csv_file.ignored
    async with db.sessions() as session:
        ctx = await ImportContext.load(session, settings, now or dt.datetime.now(dt.UTC))
    seen: dict[str, int] = {}
    batch: list[Line] = []
    for row in csv_file.rows():
        if row.error is not None:
            report.errors.append(LineProblem(row.line, row.error))
            continue
        try:
            line = _parse(kind, row, ctx)
        except LineError as exc:
            report.errors.append(LineProblem(row.line, str(exc)))
            continue
        first = seen.setdefault(line.key, line.line)
        if first != line.line:
            what = line.key.partition(":")[2]
            report.errors.append(LineProblem(line.line, f"same {'code' if line.key.startswith('code') else 'name'} "
                                                        f"{what!r} as line {first}"))
            continue
        batch.append(line)
        if len(batch) >= chunk_size:
            await _flush(db, kind, batch, ctx, report)
            batch = []
    await _flush(db, kind, batch, ctx, report)
    if RECORD_KINDS.get(kind) is not None and RECORD_KINDS[kind].recompute_status and ctx.touched_clients:
        await _recompute(db, ctx.touched_clients, ctx)
    report.errors.sort(key=lambda p: p.line)
    report.warnings.sort(key=lambda p: p.line)
    if report.fatal is None and not report.ok:
        report.fatal = ("no line could be imported" if report.errors
                        else "no data lines after the header")
    await _audit(db, report, actor)
    log.info("import %s %s: %s", kind, path, report.summary())
    return report


def _print_report(report: ImportReport) -> None:
    for problem in report.errors:
        print(f"{report.path}: {problem} (skipped)", file=sys.stderr)
    for problem in report.warnings:
        print(f"{report.path}: {problem} (warning)", file=sys.stderr)
    if report.ignored_columns:
        print(f"{report.path}: columns ignored: {', '.join(report.ignored_columns)}", file=sys.stderr)
    if report.fatal is not None:
        tail = f" (skipped {report.skipped} lines, listed above)" if report.errors else ""
        print(f"callpop import: {report.path}: {report.fatal}{tail}", file=sys.stderr)
        return
    header = f", header on line {report.header_line}" if report.header_line > 1 else ""
    print(f"{report.kind}: {report.summary()} [{report.encoding}, "
          f"delimiter {'TAB' if report.delimiter == chr(9) else repr(report.delimiter)}{header}]")


async def _run(kind: str, path: Path, settings: Settings) -> ImportReport:
    db = await open_database(settings.database)
    try:
        return await import_file(db, kind, path, settings, actor=_os_user())
    finally:
        await db.close()


def _os_user() -> str | None:
    """Who runs the command line, for the audit trail (None when the OS cannot say)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def main(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when anything was imported (or already there), 1 when the file is unreadable
    or every line failed, 2 when the database is not ready or fails."""
    path = Path(args.file)
    try:
        report = asyncio.run(_run(args.kind, path, settings))
    except SchemaError as exc:
        print(f"callpop import: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:  # the database itself failed (locked, gone): chunks already committed stay
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"callpop import: database error, import stopped: {reason}; lines already imported stay "
              f"(re-run the same file to finish: it skips what is there)", file=sys.stderr)
        return 2
    _print_report(report)
    return 0 if report.ok else 1
