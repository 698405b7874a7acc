"""``callpop run`` refuses a database where anyone can log in with the demo password.

``callpop demo`` seeds managers, ``boss`` and ``admin`` with the password ``demo``. The demo
has its own database (``[demo] database``), but a database once used for a demo, or an
account given that password by hand, must not go live: the daemon names the accounts and
stops before it listens.

Checking every employee's argon2 hash would cost a tenth of a second each, so the check
looks at the accounts a demo creates (by login) and at hashes shared by several accounts
(the demo hashes its password once for everyone; real accounts never share a salt).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from callpop.accounts import check_password
from callpop.demo.names import MANAGERS
from callpop.demo.seed import DEMO_PASSWORD
from callpop.store.db import Database
from callpop.store.models import Employee

__all__ = ["DEMO_PASSWORD", "DemoAccountsPresent", "accounts_with_demo_password", "refuse_demo_accounts"]

_DEMO_LOGINS = frozenset({"boss", "admin", *(login for _name, login in MANAGERS)})


class DemoAccountsPresent(RuntimeError):
    """Active accounts still log in with the demo password."""

    def __init__(self, logins: list[str]) -> None:
        super().__init__(
            f"{len(logins)} active account(s) still have the demo password {DEMO_PASSWORD!r}: "
            f"{', '.join(logins)}. Give each a real password (callpop user LOGIN --password ...) or point "
            f"[database] url at the production database; the demo keeps its own ([demo] database).")
        self.logins = logins


def _suspect(login: str) -> bool:
    return login in _DEMO_LOGINS or (login.startswith("manager") and login[7:].isdigit())


async def accounts_with_demo_password(db: Database) -> list[str]:
    """Logins of active employees whose password is the demo's, sorted."""
    async with db.sessions() as session:
        rows = (await session.execute(select(Employee.login, Employee.password_hash)
                                      .where(Employee.active.is_(True)))).all()
    shared = Counter(h for _login, h in rows)
    hashes = {h for login, h in rows if h and (_suspect(login) or shared[h] > 1)}
    loop = asyncio.get_running_loop()
    demo_hashes = set()
    for h in hashes:  # argon2 off the loop: the check may run while the app serves
        if await loop.run_in_executor(None, check_password, h, DEMO_PASSWORD):
            demo_hashes.add(h)
    return sorted(login for login, h in rows if h in demo_hashes)


async def refuse_demo_accounts(db: Database) -> None:
    """Raise :class:`DemoAccountsPresent` when there are any."""
    logins = await accounts_with_demo_password(db)
    if logins:
        raise DemoAccountsPresent(logins)
