"""KPI dashboard indexes: counted contacts of every manager in a period read from one
covering index, and missed calls found without walking every call of the period.

Revision ID: 0003_kpi_indexes
Revises: 0002_agreements_status_created
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_kpi_indexes"
down_revision: str | None = "0002_agreements_status_created"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_contacts_counted_started", "contacts", ["counted", "started_at", "employee_id"],
                    unique=False)
    op.create_index("ix_calls_outcome_started", "calls", ["outcome", "started_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_calls_outcome_started", table_name="calls")
    op.drop_index("ix_contacts_counted_started", table_name="contacts")
