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


def connections(app: web.Application) -> dict[str, AmiConnection]:
    """Every PBX's AMI connection by PBX id: several with ``[ami.NAME]`` tables
    (app.py keeps them in ``EXTRA["ami"]``), else the one of ``AMI`` under ``[pbx] id``."""
    several: dict[str, AmiConnection] | None = app.get(EXTRA, {}).get("ami")
    if several:
        return several
    ami = app.get(AMI)
    return {} if ami is None else {app[SETTINGS].pbx.id: ami}
