"""Accounts: who a logged-in person is, and how passwords are hashed and checked.

Neutral ground between the web layer (sessions, ``server/auth.py``), the push hub (which
routes cards to a user's tabs) and the store (which writes password hashes): none of them
has to import another for these.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["CurrentUser", "check_password", "hash_password"]

_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class CurrentUser:
    id: int
    login: str
    name: str
    role: str  # manager | supervisor | admin
    extensions: tuple[str, ...]
    language: str

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
