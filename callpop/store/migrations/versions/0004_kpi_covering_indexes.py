"""KPI covering indexes: every per-manager aggregate of the dashboard and the earnings page
read from an index alone (no table lookups), and one manager's counted contacts found
without walking everyone's.

Payments (paid_at, client_id, amount) replaces (paid_at); receivables (client_id,
issued_at, settled_at, amount) replaces (client_id, issued_at): same leading columns, so
every query the old ones served is served by the new ones.

Revision ID: 0004_kpi_covering_indexes
Revises: 0003_kpi_indexes
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_kpi_covering_indexes"
down_revision: str | None = "0003_kpi_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_payments_paid_client_amount", "payments", ["paid_at", "client_id", "amount"], unique=False)
    op.drop_index("ix_payments_paid_at", table_name="payments")
    op.create_index("ix_receivables_client_issued_settled", "receivables",
                    ["client_id", "issued_at", "settled_at", "amount"], unique=False)
    op.drop_index("ix_receivables_client_issued", table_name="receivables")
    op.create_index("ix_agreements_status_closed_maker", "agreements", ["status", "closed_at", "made_by_id"],
                    unique=False)
    op.create_index("ix_clients_responsible_status_created", "clients", ["responsible_id", "status", "created_at"],
                    unique=False)
    op.create_index("ix_contacts_employee_counted_started", "contacts", ["employee_id", "counted", "started_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_contacts_employee_counted_started", table_name="contacts")
    op.drop_index("ix_clients_responsible_status_created", table_name="clients")
    op.drop_index("ix_agreements_status_closed_maker", table_name="agreements")
    op.create_index("ix_receivables_client_issued", "receivables", ["client_id", "issued_at"], unique=False)
    op.drop_index("ix_receivables_client_issued_settled", table_name="receivables")
    op.create_index("ix_payments_paid_at", "payments", ["paid_at"], unique=False)
    op.drop_index("ix_payments_paid_client_amount", table_name="payments")
