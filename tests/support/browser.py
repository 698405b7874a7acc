"""What the browser tests share: the running app's handle and the seeded accounts' password."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from callpop.accounts import hash_password

PASSWORD = "secret-pw-1"
PASSWORD_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: once per session
KNOWN_NUMBER = "+79161234567"


@dataclass
class Live:
    """The running application: its URL, the simulated PBX and the seeded data."""

    url: str
    app: web.Application
    pbx: Any
    anna_id: int
    boris_id: int
    client_id: int

    async def call(self, scenario: str, agents: str | list[str], *, client: str = KNOWN_NUMBER,
                   caller_name: str | None = None) -> str:
        result: str = await self.pbx.place_call(scenario, client=client, agent=agents, caller_name=caller_name)
        return result
