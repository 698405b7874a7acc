"""Employees: who may log in, in which role, and which phone extensions are theirs.

The extension map is what turns the tracker's "extension 101 answered" into "Anna
answered": the journal, the KPI and the push hub all read it from here. An extension
belongs to one employee at a time; giving it to someone else moves it (and says so).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import getpass
import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.accounts import CurrentUser, hash_password
from callpop.settings import Settings
from callpop.store.errors import StoreError
from callpop.store.models import Employee, Extension, RevokedSession

__all__ = [
    "ROLES",
    "EmployeeError",
    "EmployeeUpdate",
    "credentials",
    "current_account",
    "employees_by_extension",
    "end_all_sessions",
    "main",
    "names_by_extension",
    "revoke_session",
    "save_employee",
    "session_generations",
    "session_revoked",
    "set_language",
]

log = logging.getLogger(__name__)

ROLES = ("manager", "supervisor", "admin")
MIN_PASSWORD = 8
_LOGIN = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
# An extension of the first PBX ("101"), or of PBX NAME of an [ami.NAME] table ("office2:101").
_EXTENSION = re.compile(r"^(?:[A-Za-z0-9_-]{1,38}:)?[A-Za-z0-9*#_.-]{1,40}$")
_EXTENSION_MAX = 40  # the column's width


class EmployeeError(StoreError, ValueError):
    """Bad input for an employee; the message names the field."""


@dataclass(frozen=True, slots=True)
class EmployeeUpdate:
    """What ``save_employee`` changed, in words for the operator (never the password)."""

    employee_id: int
    created: bool
    changes: tuple[str, ...] = field(default=())


def _check_login(login: str) -> str:
    login = login.strip()
    if not _LOGIN.match(login):
        raise EmployeeError(f"login: expected 1-100 letters, digits or . _ @ -, found {login!r}")
    return login


def _check_extensions(extensions: Iterable[str]) -> list[str]:
    result: list[str] = []
    for raw in extensions:
        ext = str(raw).strip()
        if not _EXTENSION.match(ext) or len(ext) > _EXTENSION_MAX:
            raise EmployeeError(f"extension: expected something like 101 (or office2:101 on the "
                                f"[ami.office2] PBX), found {raw!r}")
        if ext not in result:
            result.append(ext)
    return result


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise EmployeeError("name: expected 1-200 characters")
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise EmployeeError(f"role: expected one of {', '.join(ROLES)}, found {role!r}")
    return role


async def employees_by_extension(session: AsyncSession) -> dict[str, int]:
    """Extension -> employee id, for every extension on record."""
    rows = await session.execute(select(Extension.extension, Extension.employee_id))
    return {ext: emp for ext, emp in rows}


async def names_by_extension(session: AsyncSession) -> dict[str, str]:
    """Extension -> the name of its employee: a supervisor's desk says whose call it watches."""
    rows = await session.execute(select(Extension.extension, Employee.name)
                                 .join(Employee, Employee.id == Extension.employee_id))
    return {ext: name for ext, name in rows}


async def _assign_extensions(session: AsyncSession, employee: Employee, wanted: Sequence[str]) -> list[str]:
    """Make *wanted* exactly the employee's extensions; returns what happened, in words."""
    changes: list[str] = []
    current = {e.extension: e for e in (await session.scalars(
        select(Extension).where(Extension.extension.in_(wanted)))).all()}
    mine = {e.extension: e for e in (await session.scalars(
        select(Extension).where(Extension.employee_id == employee.id))).all()}
    for ext, old in mine.items():
        if ext not in wanted:
            await session.delete(old)
            changes.append(f"extension {ext} removed")
    for ext in wanted:
        row = current.get(ext)
        if row is None:
            session.add(Extension(extension=ext, employee_id=employee.id))
            changes.append(f"extension {ext} added")
        elif row.employee_id != employee.id:
            previous = await session.get(Employee, row.employee_id)
            row.employee_id = employee.id
            who = previous.login if previous else f"#{row.employee_id}"
            changes.append(f"extension {ext} moved from {who}")
    await session.flush()
    return changes


async def save_employee(session: AsyncSession, login: str, *, name: str | None = None,
                        role: str | None = None, password: str | None = None,
                        extensions: Sequence[str] | None = None,
                        active: bool | None = None) -> EmployeeUpdate:
    """Create the employee *login* or change the given fields; None leaves a field alone.
    A new employee needs a password. Flushes, the caller commits."""
    login = _check_login(login)
    wanted = _check_extensions(extensions) if extensions is not None else None
    employee = await session.scalar(select(Employee).where(Employee.login == login))
    changes: list[str] = []
    created = employee is None
    if employee is None:
        if not password:
            raise EmployeeError("password: a new employee needs a password")
        employee = Employee(login=login, name=_check_name(name or login), role=_check_role(role or "manager"),
                            password_hash=hash_password(password), active=True if active is None else active)
        session.add(employee)
        await session.flush()
        changes.append(f"created {login} ({employee.name}, {employee.role})")
    else:
        if name is not None and _check_name(name) != employee.name:
            employee.name = _check_name(name)
            changes.append(f"name set to {employee.name}")
        ends_sessions = False
        if role is not None and _check_role(role) != employee.role:
            employee.role = role
            changes.append(f"role set to {role}")
            ends_sessions = True
        if password:
            employee.password_hash = hash_password(password)
            changes.append("password changed")
            ends_sessions = True
        if active is not None and active != employee.active:
            employee.active = active
            changes.append("activated" if active else "deactivated")
            ends_sessions = ends_sessions or not active
        if ends_sessions:  # a stolen cookie must not outlive a new password, role or a dismissal
            employee.session_generation += 1
            changes.append("every session ended")
    if wanted is not None:
        changes.extend(await _assign_extensions(session, employee, wanted))
    await session.flush()
    log.info("employee saved: login=%s id=%s changes=%s", login, employee.id, changes)
    return EmployeeUpdate(employee_id=employee.id, created=created, changes=tuple(changes))


# --- accounts as the web layer reads them ----------------------------------------------------


async def current_account(session: AsyncSession, employee_id: int, default_language: str) -> CurrentUser | None:
    """The logged-in user behind a session, or None when the account is gone or deactivated
    (read on every request, so a deactivation or a new role takes effect at once)."""
    emp = (await session.execute(select(Employee).where(Employee.id == employee_id))).scalar_one_or_none()
    if emp is None or not emp.active:
        return None
    return CurrentUser(
        id=emp.id, login=emp.login, name=emp.name, role=emp.role,
        extensions=tuple(sorted(e.extension for e in emp.extensions)),
        language=emp.language or default_language, session_generation=emp.session_generation,
    )


async def session_revoked(session: AsyncSession, nonce: str) -> bool:
    """Whether the session with *nonce* was ended by "Log out"."""
    return (await session.execute(select(RevokedSession.nonce).where(RevokedSession.nonce == nonce))).first() \
        is not None


async def revoke_session(session: AsyncSession, nonce: str, employee_id: int, expires_at: dt.datetime) -> None:
    """End one session (its cookie is refused from now on); forgets revocations that have
    expired anyway. Flushes, the caller commits."""
    await session.execute(delete(RevokedSession).where(RevokedSession.expires_at < dt.datetime.now(dt.UTC)))
    if await session.get(RevokedSession, nonce) is None:
        session.add(RevokedSession(nonce=nonce, employee_id=employee_id, expires_at=expires_at))
    await session.flush()


async def end_all_sessions(session: AsyncSession, employee_id: int) -> int:
    """Bump the employee's session generation: every cookie issued before is refused.
    Returns the new generation. Flushes, the caller commits."""
    await session.execute(update(Employee).where(Employee.id == employee_id)
                          .values(session_generation=Employee.session_generation + 1))
    await session.flush()
    generation: int = (await session.execute(select(Employee.session_generation)
                                             .where(Employee.id == employee_id))).scalar_one()
    return generation


async def session_generations(session: AsyncSession, employee_ids: Iterable[int]) -> dict[int, int]:
    """The current session generation of each of *employee_ids* that is still active."""
    rows = await session.execute(select(Employee.id, Employee.session_generation).where(
        Employee.id.in_(list(employee_ids)), Employee.active.is_(True)))
    return {row.id: row.session_generation for row in rows}


async def credentials(session: AsyncSession, login: str) -> tuple[int, str, bool, int] | None:
    """(id, password hash, active, session generation) of the account with *login*, for the login form."""
    row = (await session.execute(
        select(Employee.id, Employee.password_hash, Employee.active, Employee.session_generation)
        .where(Employee.login == login)
    )).one_or_none()
    return None if row is None else (row.id, row.password_hash, row.active, row.session_generation)


async def set_language(session: AsyncSession, employee_id: int, language: str) -> None:
    """Remember the UI language an employee chose; flushes, the caller commits."""
    await session.execute(update(Employee).where(Employee.id == employee_id).values(language=language))


# --- callpop user LOGIN ... ------------------------------------------------------------------


def _ask_password(login: str) -> str:
    """The password from CALLPOP_PASSWORD or the terminal, typed twice; never echoed."""
    env = os.environ.get("CALLPOP_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise EmployeeError("password: give --password, set CALLPOP_PASSWORD, or run on a terminal")
    first = getpass.getpass(f"password for {login}: ")
    if getpass.getpass("again: ") != first:
        raise EmployeeError("password: the two entries differ")
    return first


def _check_pbxes(extensions: Sequence[str], settings: Settings) -> None:
    """``office2:101`` is extension 101 of the ``[ami.office2]`` PBX: a prefix settings.toml
    has no such table for is a typo, which would leave the employee's calls unmatched."""
    for ext in extensions:
        pbx, sep, _ = ext.strip().partition(":")
        if sep and pbx not in settings.more_ami:
            raise EmployeeError(f"extension: {ext!r} names no [ami.{pbx}] PBX")


async def _run_user(args: argparse.Namespace, settings: Settings) -> EmployeeUpdate:
    from callpop.store.db import open_database

    _check_pbxes(args.extension or (), settings)
    db = await open_database(settings.database)
    try:
        async with db.sessions() as session:
            exists = await session.scalar(select(Employee.id).where(Employee.login == args.login.strip()))
            password = args.password
            if exists is None and not password:
                password = _ask_password(args.login)
            if password is not None and len(password) < MIN_PASSWORD:
                raise EmployeeError(f"password: at least {MIN_PASSWORD} characters")
            update = await save_employee(session, args.login, name=args.name, role=args.role,
                                         password=password, extensions=args.extension or None,
                                         active=getattr(args, "active", None))
            if getattr(args, "end_sessions", False) and "every session ended" not in update.changes:
                await end_all_sessions(session, update.employee_id)
                update = dataclasses.replace(update, changes=(*update.changes, "every session ended"))
            await session.commit()
            return update
    finally:
        await db.close()


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``callpop user LOGIN [--name N] [--role R] [--extension 101 ...] [--password P]``."""
    from sqlalchemy.exc import SQLAlchemyError

    from callpop.store.db import SchemaError

    try:
        update = asyncio.run(_run_user(args, settings))
    except (EmployeeError, SchemaError) as exc:
        print(f"callpop user: {exc}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"callpop user: cannot use the database: {reason}", file=sys.stderr)
        return 2
    if not update.changes:
        print(f"{args.login}: nothing to change")
    for change in update.changes:
        print(f"{args.login}: {change}")
    return 0
