"""Agreements: index (client_id, status, created_at) instead of (client_id, status), so a
card reads a client's open agreements newest first without sorting all of them.

Revision ID: 0002_agreements_status_created
Revises: 0001_initial
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_agreements_status_created"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_agreements_client_status_created", "agreements", ["client_id", "status", "created_at"],
                    unique=False)
    op.drop_index("ix_agreements_client_status", table_name="agreements")


def downgrade() -> None:
    op.create_index("ix_agreements_client_status", "agreements", ["client_id", "status"], unique=False)
    op.drop_index("ix_agreements_client_status_created", table_name="agreements")
