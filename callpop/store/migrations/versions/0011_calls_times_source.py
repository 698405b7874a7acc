"""Where a call row's times come from.

``times_source``: ``ami`` (what callpop saw of the call: events, channel listings) or
``cdr`` (the PBX's call detail records, read after the call for a row whose answer or end
callpop did not see: callpop/store/cdr_reconcile.py). Every existing row is ``ami``.

Revision ID: 0011_calls_times_source
Revises: 0010_records_idempotency_key
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_calls_times_source"
down_revision: str | None = "0010_records_idempotency_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("times_source", sa.String(8), nullable=False, server_default="ami"))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("times_source")
