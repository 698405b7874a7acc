"""PostgreSQL administration for tests and benches: CREATE/DROP DATABASE on a server."""

from __future__ import annotations

from sqlalchemy.engine import make_url


async def pg_admin(url: str, sql: str) -> None:
    """Run one statement on *url*'s server outside a transaction (CREATE/DROP DATABASE need
    that), connected to its database or ``postgres``."""
    import asyncpg  # type: ignore[import-untyped]

    parsed = make_url(url)
    conn = await asyncpg.connect(user=parsed.username, password=parsed.password, host=parsed.host,
                                 port=parsed.port, database=parsed.database or "postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
