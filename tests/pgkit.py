"""PostgreSQL helpers shared by tests/conftest.py and the tests that make their own
databases. A plain module, not a conftest: two conftest.py files (tests/ and
tests/browser/) make `import conftest` ambiguous."""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url

PG_URL = os.environ.get("CALLPOP_TEST_PG_URL", "")


def pg_url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def pg_admin(sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    import asyncpg  # type: ignore[import-untyped]

    url = make_url(PG_URL)
    conn = await asyncpg.connect(user=url.username, password=url.password, host=url.host,
                                 port=url.port, database=url.database or "postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
