"""Domain errors of callpop, translated to HTTP answers at one boundary (server/errors.py).

The store never knows about HTTP; it says *what* is wrong (which field, which record) and
the API decides the status code. Messages are written for the person who sent the data.
"""

from __future__ import annotations

__all__ = ["Conflict", "Forbidden", "NotFound", "StoreError", "ValidationError"]


class StoreError(Exception):
    """Base of the errors a caller can cause (never a bug in callpop): bad input, a missing
    record, a refused change. ``callpop.server.errors`` maps each class to an HTTP status."""

    field: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(StoreError):
    """One field of the input is wrong: missing, malformed, out of range or too long."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(StoreError):
    """The record asked for (or one it refers to) does not exist."""

    def __init__(self, kind: str, ident: object, *, field: str | None = None) -> None:
        super().__init__(f"{kind} {ident} not found")
        self.kind = kind
        self.ident = ident
        self.field = field


class Forbidden(StoreError):
    """The user may read this record but not change it (e.g. a colleague's promise)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(StoreError):
    """The change contradicts what is stored (e.g. the same number twice on one client)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
