"""Typed application-state keys: one place that says what the aiohttp app holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from callpop.settings import Settings

if TYPE_CHECKING:
    from callpop.push import Hub
    from callpop.store.db import Database
    from callpop.telephony.connection import AmiConnection
    from callpop.telephony.tracker import CallTracker

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
DB: web.AppKey[Database] = web.AppKey("db")
HUB: web.AppKey[Hub] = web.AppKey("hub")
TRACKER: web.AppKey[CallTracker] = web.AppKey("tracker")
AMI: web.AppKey[AmiConnection | None] = web.AppKey("ami")
SECRET: web.AppKey[bytes] = web.AppKey("secret", bytes)
EXTRA: web.AppKey[dict[str, Any]] = web.AppKey("extra", dict)
