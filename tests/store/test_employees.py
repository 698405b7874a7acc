"""Employees and their extensions: the ``callpop user`` command and the extension map."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.accounts import check_password
from callpop.settings import Settings
from callpop.store import employees as emp
from callpop.store.db import Database
from callpop.store.models import Employee


async def create_employee(session: AsyncSession, login: str, name: str, role: str, password: str,
                          extensions: Sequence[str] = ()) -> Employee:
    """A new employee with extensions; flushes, no commit."""
    if await session.scalar(select(Employee.id).where(Employee.login == login.strip())) is not None:
        raise emp.EmployeeError(f"login: {login!r} already exists")
    update = await emp.save_employee(session, login, name=name, role=role, password=password,
                                 extensions=list(extensions))
    employee = await session.get(Employee, update.employee_id)
    assert employee is not None
    await session.refresh(employee, ["extensions"])
    return employee


def _args(login: str, *, name: str | None = None, role: str | None = None,
          extension: list[str] | None = None, password: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(login=login, name=name, role=role, extension=extension or [], password=password)


async def test_create_and_map_extensions(db: Database) -> None:
    async with db.sessions() as session:
        anna = await create_employee(session, "anna", "Анна Петрова", "manager", "secret-1", ["101", "102"])
        boss = await create_employee(session, "boss", "Босс", "supervisor", "secret-2", ["200"])
        await session.commit()
        assert sorted(e.extension for e in anna.extensions) == ["101", "102"]
    async with db.sessions() as session:
        mapping = await emp.employees_by_extension(session)
    assert mapping == {"101": anna.id, "102": anna.id, "200": boss.id}


async def test_duplicate_login_and_bad_fields_are_refused(db: Database) -> None:
    async with db.sessions() as session:
        await create_employee(session, "anna", "Анна", "manager", "secret-1")
        with pytest.raises(emp.EmployeeError, match="login: 'anna' already exists"):
            await create_employee(session, "anna", "Другая", "manager", "secret-1")
        with pytest.raises(emp.EmployeeError, match=r"^role:"):
            await emp.save_employee(session, "bob", role="king", password="secret-1")
        with pytest.raises(emp.EmployeeError, match=r"^extension:"):
            await emp.save_employee(session, "bob", password="secret-1", extensions=["10 1"])
        with pytest.raises(emp.EmployeeError, match=r"^login:"):
            await emp.save_employee(session, "bad login", password="secret-1")
        with pytest.raises(emp.EmployeeError, match=r"^password:"):
            await emp.save_employee(session, "nopass")


async def test_moving_an_extension_says_from_whom(db: Database) -> None:
    async with db.sessions() as session:
        anna = await create_employee(session, "anna", "Анна", "manager", "secret-1", ["101"])
        update = await emp.save_employee(session, "boris", name="Борис", password="secret-2", extensions=["101"])
        await session.commit()
    assert "extension 101 moved from anna" in update.changes
    async with db.sessions() as session:
        assert await emp.employees_by_extension(session) == {"101": update.employee_id}
        assert update.employee_id != anna.id


def test_user_command_creates_then_updates_without_printing_the_password(
        db_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert emp.main(_args("olga", name="Ольга", extension=["105"], password="very-secret"), db_settings) == 0
    out = capsys.readouterr().out
    assert "olga: created olga (Ольга, manager)" in out and "extension 105 added" in out
    assert "very-secret" not in out

    assert emp.main(_args("olga", role="supervisor", extension=["106"], password="new-secret-9"), db_settings) == 0
    out = capsys.readouterr().out
    assert "role set to supervisor" in out and "password changed" in out
    assert "extension 105 removed" in out and "extension 106 added" in out
    assert "new-secret-9" not in out

    assert emp.main(_args("olga"), db_settings) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_an_extension_on_a_further_pbx_is_given_with_its_pbx_id(
        db_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/operations.md, "Several PBXs": ``callpop user ivanova --extension office2:101``."""
    from callpop.settings import AmiSettings

    two_pbxes = db_settings.replace(more_ami={"office2": AmiSettings(host="10.0.2.5")})
    assert emp.main(_args("boris", name="Борис", extension=["office2:101"], password="very-secret"), two_pbxes) == 0
    assert "extension office2:101 added" in capsys.readouterr().out
    # a PBX id settings.toml has no [ami.NAME] for is a typo, not a new PBX
    assert emp.main(_args("boris", extension=["ofice2:101"]), two_pbxes) == 2
    assert "extension: 'ofice2:101' names no [ami.ofice2] PBX" in capsys.readouterr().err


async def test_user_command_password_rules(db_settings: Settings, db: Database,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLPOP_PASSWORD", raising=False)
    # asyncio.run inside main needs a thread without a running loop
    import asyncio

    code = await asyncio.to_thread(emp.main, _args("ivan", password="short"), db_settings)
    assert code == 2 and "password: at least 8" in capsys.readouterr().err
    code = await asyncio.to_thread(emp.main, _args("ivan"), db_settings)  # no tty under pytest
    assert code == 2 and "--password" in capsys.readouterr().err
    monkeypatch.setenv("CALLPOP_PASSWORD", "from-the-env-1")
    assert await asyncio.to_thread(emp.main, _args("ivan"), db_settings) == 0
    async with db.sessions() as session:
        ivan = await session.scalar(select(Employee).where(Employee.login == "ivan"))
    assert ivan is not None and check_password(ivan.password_hash, "from-the-env-1")
