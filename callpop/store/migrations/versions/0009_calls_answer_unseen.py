"""Calls whose answer callpop did not see marked as such.

``answer_unseen``: callpop was not following the call when it was answered (it learned the
call from the PBX's channel listing after a restart, the agent already talking): the
answer came between the agent's phone starting to ring and the listing, so
``answered_at`` is the latest it can have been and ``talk_seconds`` a lower bound. Shown
as "talk ≥ ..., answer time unknown"; a contact is counted only on the lower bound.

Revision ID: 0009_calls_answer_unseen
Revises: 0008_calls_pbx_id_from_key
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_calls_answer_unseen"
down_revision: str | None = "0008_calls_pbx_id_from_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("answer_unseen", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("answer_unseen")
