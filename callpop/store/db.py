"""Opening the database, and keeping its schema in step with the code.

One URL picks the backend: an SQLite file (aiosqlite, WAL, the embedded default) or
PostgreSQL (asyncpg). Schema changes are Alembic migrations shipped inside the package;
``callpop db upgrade`` applies them, and start-up refuses an older (or newer) schema
rather than failing later on a missing column in the middle of a call.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import QueuePool

from callpop.settings import DatabaseSettings, Settings

__all__ = [
    "Database",
    "EmptyDatabase",
    "SchemaError",
    "alembic_config",
    "create_engine",
    "current_revision",
    "dialect_of",
    "head_revision",
    "insert_for",
    "main",
    "open_database",
    "reader_engine",
    "reads_in_thread",
    "upgrade",
    "verify_schema",
]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_READER_MMAP_BYTES = 1 << 30


class SchemaError(RuntimeError):
    """The database is not at the schema this code needs; the message says what to run."""


class EmptyDatabase(SchemaError):
    """No table and no revision at all: a database nobody has used yet."""


@dataclass(frozen=True, slots=True)
class Database:
    """An open database: the engine and the session factory everyone shares."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    url: str

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        name = self.engine.dialect.name
        if name not in ("sqlite", "postgresql"):  # pragma: no cover - guarded in open_database
            raise RuntimeError(f"unsupported database dialect {name!r}")
        return "sqlite" if name == "sqlite" else "postgresql"

    async def close(self) -> None:
        from callpop.store.pg_direct import close_direct

        dispose_reader(self.engine)
        await close_direct(self.engine)
        await self.engine.dispose()


def _safe(url: URL) -> str:
    """The URL for logs and messages: never the password."""
    return url.render_as_string(hide_password=True)


def _prepare_sqlite_file(url: URL) -> None:
    """Create the directory of an SQLite file: first start must just work."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _fold(value: str | None) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings: WAL lets the web pages read while the journal writes;
    foreign keys are off by default in SQLite and our cascades depend on them.
    ``callpop_fold(text)`` is Unicode case folding, for client search."""
    # SQLite's lower() and LIKE fold ASCII only; client search needs Cyrillic folded too.
    dbapi_connection.create_function("callpop_fold", 1, _fold, deterministic=True)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def insert_for(dialect: str) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect {dialect!r}")  # pragma: no cover


def create_engine(url: str, *, echo: bool = False, reads_in_thread: bool = True) -> AsyncEngine:
    """An async engine for *url* with the per-backend settings callpop relies on.
    *reads_in_thread*: SQLite card reads on a worker thread (see ``reads_in_thread``)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.get_driver_name() != "aiosqlite":
            raise SchemaError(f"database.url: expected sqlite+aiosqlite:///PATH, found {_safe(parsed)}")
        _prepare_sqlite_file(parsed)
        engine = create_async_engine(parsed, echo=echo)
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        _thread_reads[engine.sync_engine] = reads_in_thread
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            raise SchemaError(f"database.url: expected postgresql+asyncpg://..., found {_safe(parsed)}")
        return create_async_engine(parsed, echo=echo, pool_size=10, max_overflow=20,
                                   pool_pre_ping=True, pool_recycle=1800)
    raise SchemaError(f"database.url: expected an sqlite+aiosqlite or postgresql+asyncpg URL, "
                      f"found {_safe(parsed)}")


_readers: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()
_thread_reads: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def reads_in_thread(engine: AsyncEngine) -> bool:
    """Whether reads on the reader engine go to a worker thread (``database.sqlite_reads_in_thread``).

    A card is ~0.1 ms of SQLite and ~0.5 ms of Python that cannot run beside the loop
    anyway (the GIL), so the thread buys no parallelism; what it buys is a loop that never
    waits for the disk, and a smaller worst loop lag (bench/pop_latency.py side by side:
    7-9 ms against 12-20 ms on the loop, the pop's p99 the same). On the loop saves the
    two hand-overs of the GIL, for a database that is always in RAM."""
    return _thread_reads.get(engine.sync_engine, True)


def reader_engine(engine: AsyncEngine) -> Engine | None:
    """A plain (pysqlite) read-only engine on the same SQLite file, or None for PostgreSQL
    and in-memory databases.

    Why: aiosqlite hops to its thread and back for every cursor call, which costs more
    than the indexed queries of a card. The directory runs a whole lookup on this engine
    in one worker thread instead (one hop). It sees committed data only, which is what a
    pop needs; WAL lets it read while the journal writes."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or (url.database or ":memory:") == ":memory:" \
            or (url.database or "").startswith("file:"):
        return None
    with _readers_lock:
        reader = _readers.get(engine.sync_engine)
        if reader is None:
            reader = sa_create_engine(url.set(drivername="sqlite+pysqlite"), pool_size=4, max_overflow=4,
                                      poolclass=QueuePool, connect_args={"check_same_thread": False})
            event.listen(reader, "connect", _on_sqlite_reader_connect)
            _readers[engine.sync_engine] = reader
    return reader


def dispose_reader(engine: AsyncEngine) -> None:
    with _readers_lock:
        reader = _readers.pop(engine.sync_engine, None)
    if reader is not None:
        reader.dispose()


def _on_sqlite_reader_connect(dbapi_connection: Any, record: Any) -> None:
    """Reader connections: never write; map the file (a page read is a memory access, not a
    read() call) and keep a larger page cache for the indexes every lookup walks."""
    _on_sqlite_connect(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA query_only = ON")
    dbapi_connection.execute(f"PRAGMA mmap_size = {SQLITE_READER_MMAP_BYTES}")
    dbapi_connection.execute("PRAGMA cache_size = -16000")


def alembic_config() -> Config:
    """Alembic configured in code, so the migrations ship inside the installed package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no Alembic migrations found in callpop/store/migrations")
    return head


def _revision_sync(connection: Connection) -> tuple[str | None, bool]:
    """(revision, whether any table exists) read on a sync connection."""
    revision = MigrationContext.configure(connection).get_current_revision()
    has_tables = bool(inspect(connection).get_table_names())
    return revision, has_tables


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        revision, _ = await conn.run_sync(_revision_sync)
    return revision


async def verify_schema(engine: AsyncEngine) -> None:
    """Raise SchemaError unless the database is exactly at the code's head revision."""
    async with engine.connect() as conn:
        revision, has_tables = await conn.run_sync(_revision_sync)
    head = head_revision()
    if revision == head:
        return
    if revision is None:
        if has_tables:
            raise SchemaError("database has tables but no callpop schema revision "
                              "(is it another application's database?): check database.url")
        raise EmptyDatabase("database is empty: run `callpop db upgrade`")
    raise SchemaError(f"database schema is at revision {revision}, callpop needs {head}: "
                      f"run `callpop db upgrade`")


async def open_database(settings: DatabaseSettings, *, check_schema: bool = True,
                        create_if_empty: bool = False) -> Database:
    """Open the database named in settings; with *check_schema*, refuse a stale schema.

    *create_if_empty* (``callpop run``): a database with no table at all (a fresh SQLite
    path, a new PostgreSQL database) gets the schema created on the spot, so the first
    start just works; an older schema is still refused, since upgrading data is the
    operator's decision (``callpop db upgrade``, after a backup)."""
    engine = create_engine(settings.url, echo=settings.echo, reads_in_thread=settings.sqlite_reads_in_thread)
    try:
        if check_schema:
            try:
                await verify_schema(engine)
            except EmptyDatabase:
                if not create_if_empty:
                    raise
                log.warning("database is empty: creating the schema (callpop db upgrade)")
                await migrate(engine, "head")
                await verify_schema(engine)
    except BaseException:
        await engine.dispose()
        raise
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    log.info("database open: %s", _safe(engine.url))
    return Database(engine=engine, sessions=sessions, url=settings.url)


def _migrate_sync(connection: Connection, cfg: Config, target: str, down: bool) -> None:
    cfg.attributes["connection"] = connection
    if down:
        command.downgrade(cfg, target)
    else:
        command.upgrade(cfg, target)


async def migrate(engine: AsyncEngine, target: str = "head", *, down: bool = False) -> None:
    """Migrate *engine*'s database up (or *down*) to *target*, on one connection.

    On SQLite, foreign keys are off while the migrations run: a migration that rebuilds a
    table (batch mode: copy, drop, rename) would otherwise have the drop cascade to the
    child rows (a rebuilt ``calls`` would take every participant and contact with it) and
    check each of them on the way. The switch only works outside a transaction, so it is
    set before and restored after; the migrations' own transaction checks the foreign keys
    before it commits (migrations/env.py)."""
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            await conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            await conn.commit()
        try:
            await conn.run_sync(_migrate_sync, alembic_config(), target, down)
            await conn.commit()
        finally:
            if sqlite:
                await conn.rollback()
                await conn.exec_driver_sql("PRAGMA foreign_keys = ON")
                await conn.commit()


async def upgrade(url: str, target: str = "head") -> None:
    """Apply migrations up to *target* on *url* (both backends, one code path: Alembic
    runs on the sync face of an async connection)."""
    engine = create_engine(url)
    try:
        await migrate(engine, target)
    finally:
        await engine.dispose()
    log.info("database upgraded to %s: %s", target, _safe(make_url(url)))


# --- callpop db upgrade|current ---------------------------------------------------------------


async def _run(action: str, url: str) -> int:
    head = head_revision()
    if action == "upgrade":
        await upgrade(url)
        print(f"database is at revision {head} (head)")
        return 0
    engine = create_engine(url)
    try:
        revision = await current_revision(engine)
    finally:
        await engine.dispose()
    state = "head" if revision == head else f"head is {head}: run `callpop db upgrade`"
    print(f"database revision: {revision or 'none (empty database)'} ({state})")
    return 0 if revision == head else 1


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``callpop db upgrade`` applies migrations; ``callpop db current`` shows the revision
    (exit status 1 when it is not the head)."""
    try:
        return asyncio.run(_run(args.action, settings.database.url))
    except SchemaError as exc:
        print(f"callpop db: {exc}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as exc:
        print(f"callpop db: cannot use the database at "
              f"{_safe(make_url(settings.database.url))}: {_reason(exc)}", file=sys.stderr)
        return 2


def _reason(exc: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's statement dump and links."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]
