"""Every write to the directory announced by the database itself, whoever makes it.

The dialplan's remembered answers (store/caller_cache.py) depend on ``clients``,
``client_phones``, ``employees`` and ``extensions``. A callpop process sees its own writes
to them; the writes of another process (``callpop import``, ``callpop user``, a second
instance, a script in psql) only the database sees. So the database says so, in the same
transaction as the write (store/directory_changes.py listens):

* PostgreSQL: a row trigger on each table notifies ``callpop_directory`` with what the
  row touches (``c<client id>``, ``e<employee id>``, ``n<E.164>``, ``t<last 10 digits>``,
  space-separated); a notification is delivered when its transaction commits, and not at
  all when it rolls back. Past ``ROWS_NAMED`` rows in one transaction (a bulk import),
  one ``*`` ("everything") is sent instead of a notification per row. ``TRUNCATE`` sends
  ``*`` too.
* SQLite (no NOTIFY): each write bumps ``directory_version.version``; every callpop
  process on the file reads that one row a few times a second and forgets its answers
  when it moved. The table exists on PostgreSQL too (one schema for both), unused there:
  a row every writer updates would serialise their transactions.

Revision ID: 0013_directory_changes
Revises: 0012_calls_uncertain_index
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_directory_changes"
down_revision: str | None = "0012_calls_uncertain_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("clients", "client_phones", "employees", "extensions")
ROWS_NAMED = 100  # rows in one transaction named one by one; beyond: one "everything"

# What each table's row touches, as notification words (NULLs are left out by concat_ws).
_WORDS = {
    "clients": "'c' || OLD.id, 'c' || NEW.id",
    "client_phones": ("'c' || OLD.client_id, 'c' || NEW.client_id, 'n' || OLD.e164, 'n' || NEW.e164, "
                      "'t' || OLD.tail10, 't' || NEW.tail10"),
    "employees": "'e' || OLD.id, 'e' || NEW.id",
    "extensions": "'e' || OLD.employee_id, 'e' || NEW.employee_id",
}

_PG_FUNCTION = """
CREATE FUNCTION callpop_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('callpop_directory', '*');
        RETURN NULL;
    END IF;
    named := coalesce(nullif(current_setting('callpop.directory_rows', true), ''), '0')::integer + 1;
    PERFORM set_config('callpop.directory_rows', named::text, true);
    IF named > %(limit)d THEN
        IF named = %(limit)d + 1 THEN
            PERFORM pg_notify('callpop_directory', '*');
        END IF;
        RETURN NULL;
    END IF;
    %(branches)s
    RETURN NULL;
END
$$
"""


def _pg_function() -> str:
    branches = "\n    ".join(
        f"{'IF' if i == 0 else 'ELSIF'} TG_TABLE_NAME = '{table}' THEN\n"
        f"        PERFORM pg_notify('callpop_directory', concat_ws(' ', {words}));"
        for i, (table, words) in enumerate(_WORDS.items()))
    return _PG_FUNCTION % {"limit": ROWS_NAMED, "branches": branches + "\n    END IF;"}


def upgrade() -> None:
    op.create_table("directory_version",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
                    sa.PrimaryKeyConstraint("id"))
    op.execute("INSERT INTO directory_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_function())
        for table in TABLES:
            op.execute(f"CREATE TRIGGER callpop_directory_rows AFTER INSERT OR UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION callpop_directory_changed()")
            op.execute(f"CREATE TRIGGER callpop_directory_truncate AFTER TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION callpop_directory_changed()")
        return
    for table in TABLES:
        for what in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER callpop_directory_{table}_{what.lower()} AFTER {what} ON {table} "
                       f"BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS callpop_directory_rows ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS callpop_directory_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS callpop_directory_changed()")
    else:
        for table in TABLES:
            for what in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS callpop_directory_{table}_{what}")
    op.drop_table("directory_version")
