"""Call times checked by the database, and calls whose end was not seen marked as such.

``ck_calls_answered_after_start``: a call is answered at or after it started (rows that
break it, written by older versions from a transfer's summed talk time, get their answer
moved to the start first). ``ck_calls_ended_after_start``: the same for the end.
``end_unseen``: the call's end was not seen (callpop or its PBX connection was down when it
ended): ``ended_at`` is the last moment callpop knew it was on and ``talk_seconds`` a lower
bound; ``outcome`` is ``unknown`` when nobody was seen answering.

Revision ID: 0006_call_times_checked
Revises: 0005_callbacks_done
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_call_times_checked"
down_revision: str | None = "0005_callbacks_done"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE calls SET answered_at = started_at WHERE answered_at < started_at")
    op.execute("UPDATE calls SET ended_at = started_at WHERE ended_at < started_at")
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("end_unseen", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_check_constraint("ck_calls_answered_after_start", "answered_at >= started_at")
        batch.create_check_constraint("ck_calls_ended_after_start", "ended_at >= started_at")


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint("ck_calls_ended_after_start", type_="check")
        batch.drop_constraint("ck_calls_answered_after_start", type_="check")
        batch.drop_column("end_unseen")
