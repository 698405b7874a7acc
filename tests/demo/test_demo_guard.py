"""The demo's accounts never go live: the demo has its own database, and ``callpop run``
refuses a database where accounts still log in with the demo password."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import update

from callpop.accounts import hash_password
from callpop.app import _serve, create_app
from callpop.demo.guard import DemoAccountsPresent, accounts_with_demo_password, refuse_demo_accounts
from callpop.demo.launch import demo_settings
from callpop.settings import Settings
from callpop.settings_file import settings_from_mapping
from callpop.store.db import Database
from callpop.store.models import Employee

DEMO_HASH = hash_password("demo")


async def _employee(db: Database, login: str, password_hash: str, *, active: bool = True) -> None:
    async with db.sessions() as s:
        s.add(Employee(login=login, name=login.title(), role="manager", password_hash=password_hash, active=active))
        await s.commit()


def test_the_demo_uses_its_own_database_whatever_run_uses() -> None:
    settings = settings_from_mapping({}, environ={"CALLPOP_DATABASE_URL": "postgresql+asyncpg://callpop@db/callpop"})
    demo = demo_settings(settings)
    assert demo.database.url == "sqlite+aiosqlite:///var/callpop-demo.db" != settings.database.url
    own = settings_from_mapping({"demo": {"database": "sqlite+aiosqlite:///tmp/x.db"}}, environ={})
    assert demo_settings(own).database.url == "sqlite+aiosqlite:///tmp/x.db"


async def test_accounts_with_the_demo_password_are_found_by_login_or_shared_hash(db: Database) -> None:
    await _employee(db, "boss", DEMO_HASH)
    await _employee(db, "admin", DEMO_HASH)
    await _employee(db, "olga", hash_password("demo"))  # not a demo login, own salt: not checked
    await _employee(db, "p1", DEMO_HASH)  # shares the demo's hash with boss and admin
    await _employee(db, "gone", DEMO_HASH, active=False)
    await _employee(db, "anna", hash_password("a real password"))
    assert await accounts_with_demo_password(db) == ["admin", "boss", "p1"]
    with pytest.raises(DemoAccountsPresent, match=r"3 active account\(s\) still have the demo password 'demo': "
                                                  r"admin, boss, p1\. Give each a real password"):
        await refuse_demo_accounts(db)
    async with db.sessions() as s:
        await s.execute(update(Employee).where(Employee.login.in_(["boss", "admin", "p1"]))
                        .values(password_hash=hash_password("changed at last")))
        await s.commit()
    await refuse_demo_accounts(db)  # nothing left to refuse


async def test_run_stops_before_listening_while_demo_accounts_exist(db: Database, db_settings: Settings,
                                                                    tmp_path: Path) -> None:
    await _employee(db, "boss", DEMO_HASH)
    settings = db_settings.replace(web=dataclasses.replace(db_settings.web, port=0))
    app = create_app(settings, db=db, start_ami=False)
    with pytest.raises(DemoAccountsPresent, match="boss"):
        await _serve(settings, app, refuse_demo=True)
