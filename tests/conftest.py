"""Shared fixtures. Database-backed tests run on SQLite, and on PostgreSQL too when
CALLPOP_TEST_PG_URL names a server (.ci/run starts one; by hand:
``eval "$(bash .ci/pg start)"``).

How to use them:

- ``settings``: the default Settings with ``database.url`` pointing at a not-yet-created
  SQLite file in the test's tmp dir. Pure tests use it; it never touches PostgreSQL.
- ``db``: a ``callpop.store.db.Database`` on a fresh, migrated, empty database, one per
  test; parametrised ``[sqlite]`` and ``[postgresql]`` (the latter skipped unless
  CALLPOP_TEST_PG_URL is set). Use ``async with db.sessions() as session: ...`` and
  commit yourself. The fixture closes it.
- ``db_url``: the URL of such a fresh migrated database, not opened, for tests that start
  the app or a CLI themselves (``create_app(settings.replace(database=...))``).
- ``empty_db_url``: the URL of a database nobody has used (a new SQLite path, a new
  PostgreSQL database), same two parameters, for the migration tests.
- ``db_settings``: ``settings`` whose ``database.url`` is ``db``'s URL (so code under
  test that opens the database itself sees the same data).
- ``start_live``: ``await start_live(store=...)`` starts the real app (``create_app`` on
  ``db``, stand-in templates unless ``real_templates=True``) on a test port and returns a
  ``Live``: logged-in HTTP clients, websocket tabs, the pipeline. Every app it started is
  closed after the test, before the database.

Migrating is done once per session into a template (SQLite: a file copied per test;
PostgreSQL: ``CREATE DATABASE ... TEMPLATE``), so a database costs milliseconds. Add your
own fixtures in tests/<subdir>/conftest.py or in your test module, not here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy.engine import make_url

from callpop.settings import DatabaseSettings, Settings
from callpop.settings_file import settings_from_mapping
from callpop.store.db import Database, open_database, upgrade
from callpop.store_hooks import StoreHooks
from tests.support.live import Live, StartLive, templates_dir
from tests.support.pg import pg_admin

T = TypeVar("T")

PG_URL = os.environ.get("CALLPOP_TEST_PG_URL", "")
DATABASES = [
    pytest.param("sqlite"),
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="CALLPOP_TEST_PG_URL not set")),
]


def _pg_url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def _run_in_thread(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on its own loop in a worker thread: session-scoped set-up must not
    touch the event loop pytest-asyncio gives each test."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, factory()).result()


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _run_in_thread(lambda: upgrade(_sqlite_url(path)))
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("CALLPOP_TEST_PG_URL not set")
    name = f"callpop_tpl_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        await pg_admin(PG_URL, f'CREATE DATABASE "{name}"')
        await upgrade(_pg_url(name))

    _run_in_thread(create)
    yield name
    _run_in_thread(lambda: pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=DATABASES)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """URL of a fresh migrated database (sqlite or postgresql)."""
    if request.param == "sqlite":
        path = tmp_path / "callpop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield _sqlite_url(path)
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"callpop_t_{uuid.uuid4().hex[:12]}"
    await pg_admin(PG_URL, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_url(name)
    finally:
        await pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')



@pytest.fixture(params=DATABASES)
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """URL of a database nobody has used: a new SQLite path, a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/fresh/callpop.db"
        return
    name = f"callpop_e_{uuid.uuid4().hex[:12]}"
    await pg_admin(PG_URL, f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        await pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await open_database(DatabaseSettings(url=db_url))
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_from_mapping({"database": {"url": _sqlite_url(tmp_path / "callpop.db")},
                                  "journal": {"spool_path": str(tmp_path / "journal-spool.db")}},
                                 source="test", environ={})


@pytest.fixture
def db_settings(settings: Settings, db: Database) -> Settings:
    return settings.replace(database=DatabaseSettings(url=db.url))


@pytest.fixture
async def start_live(settings: Settings, db: Database, tmp_path: Path) -> AsyncIterator[StartLive]:
    """Start the real app on a test port as often as a test asks; close every one afterwards."""
    from callpop.app import create_app
    from callpop.server.templating import setup_templates

    started: list[Live] = []

    async def start(app_settings: Settings | None = None, *, store: StoreHooks | None = None,
                    real_templates: bool = False, start_ami: bool = False, **kwargs: Any) -> Live:
        app = create_app(app_settings or settings, db=db, start_ami=start_ami, store=store, **kwargs)
        if not real_templates:
            setup_templates(app, templates_dir(tmp_path))
        server = TestServer(app)
        await server.start_server()
        live = Live(server=server, app=app)
        started.append(live)
        return live

    yield start
    for live in reversed(started):
        await live.close()
