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
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("callpop migrations run through `callpop db upgrade` (callpop.store.db.upgrade), "
                       "which passes a connection; plain `alembic` is not configured")
_run(connection)
