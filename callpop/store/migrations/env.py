"""Alembic environment: callpop always hands in a live connection (see store/db.py), so
migrations run the same way on SQLite and PostgreSQL and need no alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from callpop.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    sqlite = connection.dialect.name == "sqlite"
    if sqlite and connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
        # a table rebuild would cascade its drop to the child rows: store.db.migrate turns them off
        raise RuntimeError("SQLite migrations run with foreign keys off (callpop.store.db.migrate)")
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:  # raised inside the transaction: nothing of the migration is kept
                tables = sorted({str(row[0]) for row in broken})
                raise RuntimeError(f"migration left {len(broken)} rows with a dangling foreign key "
                                   f"in {', '.join(tables)}")


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("callpop migrations run through `callpop db upgrade` (callpop.store.db.upgrade), "
                       "which passes a connection; plain `alembic` is not configured")
_run(connection)
