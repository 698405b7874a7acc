"""The database schema (SQLAlchemy 2 mapped classes).

Every change here needs an Alembic migration in store/migrations/versions. Times are
stored as UTC; ``UTCDateTime`` gives back aware datetimes on SQLite too, so KPI day
boundaries never depend on the database.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: callpop stores aware UTC times only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Money = Numeric(14, 2)


# Named constraints: SQLite migrations (batch mode) can only drop what has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime, Decimal: Money}


class Employee(Base):
    __tablename__ = "employees"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    login: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="manager")  # manager | supervisor | admin
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str | None] = mapped_column(String(5), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Part of every session cookie; bumping it ends every session of the employee at once
    # (logout everywhere, password or role change, deactivation).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    extensions: Mapped[list[Extension]] = relationship(back_populates="employee", lazy="selectin")


class Extension(Base):
    """An agent extension (what the tracker reports) owned by one employee."""

    __tablename__ = "extensions"

    extension: Mapped[str] = mapped_column(String(40), primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"), index=True)

    employee: Mapped[Employee] = relationship(back_populates="extensions")


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (
        # covering: the dashboard's regular and new clients per manager from the index alone (migration 0004)
        Index("ix_clients_responsible_status_created", "responsible_id", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    company: Mapped[str | None] = mapped_column(String(300), default=None)
    responsible_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), index=True, default=None)
    status: Mapped[str] = mapped_column(String(20), default="new")  # new | regular
    # how the status was decided: rule (computed) | manual (set by hand, the rule leaves it alone)
    status_source: Mapped[str] = mapped_column(String(20), default="rule")
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    phones: Mapped[list[ClientPhone]] = relationship(back_populates="client", lazy="raise",
                                                     cascade="all, delete-orphan")


class ClientPhone(Base):
    __tablename__ = "client_phones"
    __table_args__ = (
        Index("ix_client_phones_e164", "e164"),
        Index("ix_client_phones_tail10", "tail10"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    raw: Mapped[str] = mapped_column(String(64))
    e164: Mapped[str | None] = mapped_column(String(20), default=None)
    # last 10 national digits, the fallback key when E.164 differs (country code lost)
    tail10: Mapped[str | None] = mapped_column(String(10), default=None)
    label: Mapped[str | None] = mapped_column(String(50), default=None)

    client: Mapped[Client] = relationship(back_populates="phones")


class Agreement(Base):
    __tablename__ = "agreements"
    __table_args__ = (
        # open agreements newest first, straight from the index (store/history.py)
        Index("ix_agreements_client_status_created", "client_id", "status", "created_at"),
        Index("ix_agreements_client_created", "client_id", "created_at"),
        # covering: agreements won and lost per manager in a period, table untouched (migration 0004)
        Index("ix_agreements_status_closed_maker", "status", "closed_at", "made_by_id"),
        # a save retried after a lost answer finds the first one (store/records/idempotency.py)
        Index("uq_agreements_made_by_idempotency_key", "made_by_id", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300))
    terms: Mapped[str | None] = mapped_column(Text, default=None)
    amount: Mapped[Decimal | None] = mapped_column(default=None)
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | won | lost | cancelled
    made_by_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), index=True, default=None)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), default=None)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # the Idempotency-Key of the request that created it (None: imported, or sent without one)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)


class Promise(Base):
    __tablename__ = "promises"
    __table_args__ = (
        Index("ix_promises_client_status_due", "client_id", "status", "due_at"),
        Index("ix_promises_maker_status_due", "made_by_id", "status", "due_at"),
        Index("uq_promises_made_by_idempotency_key", "made_by_id", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    due_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | kept | broken | cancelled
    made_by_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), default=None)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), default=None)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Note(Base):
    __tablename__ = "notes"
    __table_args__ = (
        Index("ix_notes_client_created", "client_id", "created_at"),
        Index("uq_notes_author_idempotency_key", "author_id", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), default=None)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)


class Call(Base):
    """One row per call as the tracker ended it; (pbx_id, call_key) makes logging idempotent."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("pbx_id", "call_key", name="uq_calls_pbx_call"),
        Index("ix_calls_client_started", "client_id", "started_at"),
        # the dashboard's missed calls per manager and day (migration 0003)
        Index("ix_calls_outcome_started", "outcome", "started_at"),
        # the few rows whose answer or end callpop did not see, by end: the CDR reconciler
        # reads them every [cdr] interval without walking the journal (migration 0012)
        # (each dialect's predicate as SQLAlchemy renders the reconciler's condition: SQLite
        # uses a partial index only when the query has the very same terms)
        Index("ix_calls_uncertain_ended", "ended_at", postgresql_where=text("end_unseen OR answer_unseen"),
              sqlite_where=text("end_unseen = 1 OR answer_unseen = 1")),
        # migration 0006: the database refuses an answer or an end before the start
        CheckConstraint("answered_at >= started_at", name="ck_calls_answered_after_start"),
        CheckConstraint("ended_at >= started_at", name="ck_calls_ended_after_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pbx_id: Mapped[str] = mapped_column(String(50))
    call_key: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(10))  # inbound | outbound | internal
    client_number: Mapped[str | None] = mapped_column(String(64), default=None)
    caller_name: Mapped[str | None] = mapped_column(String(200), default=None)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), default=None)
    started_at: Mapped[dt.datetime] = mapped_column(index=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(10), default=None)  # answered | missed | unknown
    talk_seconds: Mapped[int] = mapped_column(Integer, default=0)
    # the end was not seen (callpop or its PBX link was down): ended_at and talk_seconds are
    # lower bounds (callpop/store/journal_recovery.py)
    end_unseen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # the answer was not seen (callpop learned the call from a channel listing, already
    # talking): answered_at is the latest it can have been, talk_seconds a lower bound (0009)
    answer_unseen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # where the times come from: "ami" what callpop saw, "cdr" the PBX's call detail
    # records, read for a row callpop could not see whole (callpop/store/cdr_reconcile.py; 0011)
    times_source: Mapped[str] = mapped_column(String(8), default="ami", server_default="ami")

    participants: Mapped[list[CallParticipant]] = relationship(back_populates="call", lazy="raise",
                                                               cascade="all, delete-orphan")


class CallParticipant(Base):
    """An agent's part in a call: rang, answered, and how long they talked."""

    __tablename__ = "call_participants"
    __table_args__ = (UniqueConstraint("call_id", "extension", name="uq_participant_call_ext"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    extension: Mapped[str] = mapped_column(String(40))
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), index=True, default=None)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    talk_seconds: Mapped[int] = mapped_column(Integer, default=0)

    call: Mapped[Call] = relationship(back_populates="participants")


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_client_paid", "client_id", "paid_at"),
        # covering: a period's payments summed per client without reading the table (migration 0004)
        Index("ix_payments_paid_client_amount", "paid_at", "client_id", "amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"), index=True, default=None)
    amount: Mapped[Decimal] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    paid_at: Mapped[dt.datetime] = mapped_column()
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Receivable(Base):
    """Money a client owes: outstanding from issued_at until settled_at (None = still open)."""

    __tablename__ = "receivables"
    __table_args__ = (
        # covering: what each client owed at a period's start, from the index alone (migration 0004)
        Index("ix_receivables_client_issued_settled", "client_id", "issued_at", "settled_at", "amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"), default=None)
    amount: Mapped[Decimal] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    issued_at: Mapped[dt.datetime] = mapped_column()
    due_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    settled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)


class Contact(Base):
    """A conversation of one manager with a known client; the KPI counts the counted ones."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("call_id", "employee_id", name="uq_contacts_call_employee"),
        Index("ix_contacts_employee_started", "employee_id", "started_at"),
        # covering: one manager's counted contacts in a period, the earnings page (migration 0004)
        Index("ix_contacts_employee_counted_started", "employee_id", "counted", "started_at"),
        # covering index of the dashboard: counted contacts of all managers in a period (migration 0003)
        Index("ix_contacts_counted_started", "counted", "started_at", "employee_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[dt.datetime] = mapped_column()
    talk_seconds: Mapped[int] = mapped_column(Integer)
    counted: Mapped[bool] = mapped_column(Boolean)
    # why it does not count: short_talk | not_regular | direction_off | duplicate_day | internal
    reason: Mapped[str | None] = mapped_column(String(30), default=None)


class Plan(Base):
    """A supervisor's monthly target for one KPI of one manager."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("employee_id", "month", "kpi", name="uq_plans_employee_month_kpi"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    month: Mapped[dt.date] = mapped_column(Date)  # first day of the month
    kpi: Mapped[str] = mapped_column(String(30))  # contacts | collections | win_rate | new_vs_regular
    target: Mapped[Decimal] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CallbackDone(Base):
    """A missed call someone has dealt with ("done" on the desk's list of calls to return):
    off every desk's list, whoever marked it."""

    __tablename__ = "callbacks_done"

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id", ondelete="SET NULL"), default=None)
    done_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RevokedSession(Base):
    """A session ended by "Log out": its cookie is refused until it would have expired anyway."""

    __tablename__ = "revoked_sessions"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class AuditEntry(Base):
    """One changed field of money or a KPI input: who changed it, when, from what to what.

    Payments, receivables, agreements (status, amount), a client's status and responsible
    manager and the plans decide the managers' bonuses; supervisors read this trail
    (``/api/audit``, the dashboard). ``employee_id`` is None for the command line (import) and the regular-client rule.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_entity", "entity", "entity_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), default=None)
    source: Mapped[str] = mapped_column(String(20), default="api")  # api | page | import | rule | cli
    entity: Mapped[str] = mapped_column(String(30))  # payment | receivable | agreement | client | plan
    entity_id: Mapped[int | None] = mapped_column(Integer, default=None)
    client_id: Mapped[int | None] = mapped_column(Integer, default=None)
    field: Mapped[str] = mapped_column(String(50))
    old: Mapped[str | None] = mapped_column(Text, default=None)
    new: Mapped[str | None] = mapped_column(Text, default=None)


class DirectoryVersion(Base):
    """One row whose ``version`` SQLite's triggers (the ``directory_changes`` migration)
    bump at every write to clients, their phones, employees or extensions, by any process:
    what tells a callpop process that another one changed who a caller is
    (store/directory_changes.py). PostgreSQL notifies instead and leaves it at 0."""

    __tablename__ = "directory_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
