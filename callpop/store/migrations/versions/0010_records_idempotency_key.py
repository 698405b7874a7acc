"""Promises, agreements and notes remember the Idempotency-Key of the request that made them.

A desk that sent a save and never heard back (its instance died after the commit, the
network dropped the answer) sends it again with the same key, to the same instance or
another one; the second request finds the first row instead of adding a copy
(``store/records/idempotency.py``). Unique per author: one employee's keys never meet
another's. Rows made before, imported or sent without a key have none.

Revision ID: 0010_records_idempotency_key
Revises: 0009_calls_answer_unseen
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_records_idempotency_key"
down_revision: str | None = "0009_calls_answer_unseen"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (("agreements", "made_by_id"), ("promises", "made_by_id"), ("notes", "author_id"))


def _index(table: str, author: str) -> str:
    return f"uq_{table}_{author.removesuffix('_id')}_idempotency_key"


def upgrade() -> None:
    for table, author in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("idempotency_key", sa.String(length=64), nullable=True))
        op.create_index(_index(table, author), table, [author, "idempotency_key"], unique=True)


def downgrade() -> None:
    for table, author in _TABLES:
        op.drop_index(_index(table, author), table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("idempotency_key")
