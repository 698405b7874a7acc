"""Initial schema: employees and extensions, clients and phones, agreements, promises,
notes, calls and participants, payments, receivables, contacts, plans.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('employees',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('login', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_employees')),
    sa.UniqueConstraint('login', name=op.f('uq_employees_login'))
    )
    op.create_table('clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('company', sa.String(length=300), nullable=True),
    sa.Column('responsible_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_source', sa.String(length=20), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['responsible_id'], ['employees.id'], name=op.f('fk_clients_responsible_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients')),
    sa.UniqueConstraint('external_id', name=op.f('uq_clients_external_id'))
    )
    op.create_index(op.f('ix_clients_created_at'), 'clients', ['created_at'], unique=False)
    op.create_index(op.f('ix_clients_responsible_id'), 'clients', ['responsible_id'], unique=False)
    op.create_table('extensions',
    sa.Column('extension', sa.String(length=40), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_extensions_employee_id_employees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('extension', name=op.f('pk_extensions'))
    )
    op.create_index(op.f('ix_extensions_employee_id'), 'extensions', ['employee_id'], unique=False)
    op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('kpi', sa.String(length=30), nullable=False),
    sa.Column('target', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_plans_employee_id_employees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('employee_id', 'month', 'kpi', name='uq_plans_employee_month_kpi')
    )
    op.create_table('calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pbx_id', sa.String(length=50), nullable=False),
    sa.Column('call_key', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('client_number', sa.String(length=64), nullable=True),
    sa.Column('caller_name', sa.String(length=200), nullable=True),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=10), nullable=True),
    sa.Column('talk_seconds', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_calls_client_id_clients'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('pbx_id', 'call_key', name='uq_calls_pbx_call')
    )
    op.create_index('ix_calls_client_started', 'calls', ['client_id', 'started_at'], unique=False)
    op.create_index(op.f('ix_calls_started_at'), 'calls', ['started_at'], unique=False)
    op.create_table('client_phones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('raw', sa.String(length=64), nullable=False),
    sa.Column('e164', sa.String(length=20), nullable=True),
    sa.Column('tail10', sa.String(length=10), nullable=True),
    sa.Column('label', sa.String(length=50), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_client_phones_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_phones'))
    )
    op.create_index(op.f('ix_client_phones_client_id'), 'client_phones', ['client_id'], unique=False)
    op.create_index('ix_client_phones_e164', 'client_phones', ['e164'], unique=False)
    op.create_index('ix_client_phones_tail10', 'client_phones', ['tail10'], unique=False)
    op.create_table('agreements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('terms', sa.Text(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('made_by_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_agreements_call_id_calls')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_agreements_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['made_by_id'], ['employees.id'], name=op.f('fk_agreements_made_by_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreements')),
    sa.UniqueConstraint('external_id', name=op.f('uq_agreements_external_id'))
    )
    op.create_index('ix_agreements_client_created', 'agreements', ['client_id', 'created_at'], unique=False)
    op.create_index('ix_agreements_client_status', 'agreements', ['client_id', 'status'], unique=False)
    op.create_index(op.f('ix_agreements_closed_at'), 'agreements', ['closed_at'], unique=False)
    op.create_index(op.f('ix_agreements_made_by_id'), 'agreements', ['made_by_id'], unique=False)
    op.create_table('call_participants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('extension', sa.String(length=40), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=True),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.Column('talk_seconds', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_call_participants_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_call_participants_employee_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_participants')),
    sa.UniqueConstraint('call_id', 'extension', name='uq_participant_call_ext')
    )
    op.create_index(op.f('ix_call_participants_employee_id'), 'call_participants', ['employee_id'], unique=False)
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('talk_seconds', sa.Integer(), nullable=False),
    sa.Column('counted', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_contacts_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_contacts_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_contacts_employee_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('call_id', 'employee_id', name='uq_contacts_call_employee')
    )
    op.create_index(op.f('ix_contacts_client_id'), 'contacts', ['client_id'], unique=False)
    op.create_index('ix_contacts_employee_started', 'contacts', ['employee_id', 'started_at'], unique=False)
    op.create_table('notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['employees.id'], name=op.f('fk_notes_author_id_employees')),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_notes_call_id_calls')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_notes_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes'))
    )
    op.create_index('ix_notes_client_created', 'notes', ['client_id', 'created_at'], unique=False)
    op.create_table('promises',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('made_by_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_promises_call_id_calls')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_promises_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['closed_by_id'], ['employees.id'], name=op.f('fk_promises_closed_by_id_employees')),
    sa.ForeignKeyConstraint(['made_by_id'], ['employees.id'], name=op.f('fk_promises_made_by_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promises')),
    sa.UniqueConstraint('external_id', name=op.f('uq_promises_external_id'))
    )
    op.create_index('ix_promises_client_status_due', 'promises', ['client_id', 'status', 'due_at'], unique=False)
    op.create_index('ix_promises_maker_status_due', 'promises', ['made_by_id', 'status', 'due_at'], unique=False)
    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('agreement_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreements.id'], name=op.f('fk_payments_agreement_id_agreements')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_payments_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('external_id', name=op.f('uq_payments_external_id'))
    )
    op.create_index(op.f('ix_payments_agreement_id'), 'payments', ['agreement_id'], unique=False)
    op.create_index('ix_payments_client_paid', 'payments', ['client_id', 'paid_at'], unique=False)
    op.create_index(op.f('ix_payments_paid_at'), 'payments', ['paid_at'], unique=False)
    op.create_table('receivables',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('agreement_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreements.id'], name=op.f('fk_receivables_agreement_id_agreements')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_receivables_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receivables')),
    sa.UniqueConstraint('external_id', name=op.f('uq_receivables_external_id'))
    )
    op.create_index('ix_receivables_client_issued', 'receivables', ['client_id', 'issued_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_receivables_client_issued', table_name='receivables')
    op.drop_table('receivables')
    op.drop_index(op.f('ix_payments_paid_at'), table_name='payments')
    op.drop_index('ix_payments_client_paid', table_name='payments')
    op.drop_index(op.f('ix_payments_agreement_id'), table_name='payments')
    op.drop_table('payments')
    op.drop_index('ix_promises_maker_status_due', table_name='promises')
    op.drop_index('ix_promises_client_status_due', table_name='promises')
    op.drop_table('promises')
    op.drop_index('ix_notes_client_created', table_name='notes')
    op.drop_table('notes')
    op.drop_index('ix_contacts_employee_started', table_name='contacts')
    op.drop_index(op.f('ix_contacts_client_id'), table_name='contacts')
    op.drop_table('contacts')
    op.drop_index(op.f('ix_call_participants_employee_id'), table_name='call_participants')
    op.drop_table('call_participants')
    op.drop_index(op.f('ix_agreements_made_by_id'), table_name='agreements')
    op.drop_index(op.f('ix_agreements_closed_at'), table_name='agreements')
    op.drop_index('ix_agreements_client_status', table_name='agreements')
    op.drop_index('ix_agreements_client_created', table_name='agreements')
    op.drop_table('agreements')
    op.drop_index('ix_client_phones_tail10', table_name='client_phones')
    op.drop_index('ix_client_phones_e164', table_name='client_phones')
    op.drop_index(op.f('ix_client_phones_client_id'), table_name='client_phones')
    op.drop_table('client_phones')
    op.drop_index(op.f('ix_calls_started_at'), table_name='calls')
    op.drop_index('ix_calls_client_started', table_name='calls')
    op.drop_table('calls')
    op.drop_table('plans')
    op.drop_index(op.f('ix_extensions_employee_id'), table_name='extensions')
    op.drop_table('extensions')
    op.drop_index(op.f('ix_clients_responsible_id'), table_name='clients')
    op.drop_index(op.f('ix_clients_created_at'), table_name='clients')
    op.drop_table('clients')
    op.drop_table('employees')
