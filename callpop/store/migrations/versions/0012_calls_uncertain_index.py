"""An index of the call rows whose answer or end callpop did not see, by their end.

The CDR reconciler (callpop/cdr_reconciler.py) reads those rows every ``[cdr] interval``;
they are few, the journal is large: a partial index keeps the look-up from walking it.

Revision ID: 0012_calls_uncertain_index
Revises: 0011_calls_times_source
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_calls_uncertain_index"
down_revision: str | None = "0011_calls_times_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None



def upgrade() -> None:
    # each dialect's predicate as SQLAlchemy renders the reconciler's condition (SQLite uses a
    # partial index only when the query has the very same terms)
    op.create_index("ix_calls_uncertain_ended", "calls", ["ended_at"], unique=False,
                    postgresql_where=sa.text("end_unseen OR answer_unseen"),
                    sqlite_where=sa.text("end_unseen = 1 OR answer_unseen = 1"))


def downgrade() -> None:
    op.drop_index("ix_calls_uncertain_ended", table_name="calls")
