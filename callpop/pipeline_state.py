"""What the pipeline knows of each call, and what it needs of the tracker.

One :class:`CallState` per call the pipeline follows: its caller and card (looked up
once), its journal row, which agents are ringing or talking, the messages sent so far (for
their cross-instance ids) and the worker that handles its events in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from callpop.cards import LookupResult
from callpop.telephony.events import ActiveCall, CallEvent, Direction

__all__ = ["ActiveCallSource", "AgentState", "CallState"]

AgentState = Literal["ringing", "answered"]


class ActiveCallSource(Protocol):
    """What the pipeline needs of the tracker: the calls it believes are on."""

    def active_calls(self) -> list[ActiveCall]: ...


@dataclass(eq=False)
class CallState:
    """What the pipeline knows and has published about one call."""

    call: str
    direction: Direction | None = None
    number: str | None = None
    caller_name: str | None = None
    card: dict[str, Any] | None = None
    lookup_failed: bool = False
    client_id: int | None = None
    db_id: int | None = None
    agents: dict[str, AgentState] = field(default_factory=dict)
    since: dict[str, float | None] = field(default_factory=dict)  # agent -> when its state began
    involved: set[str] = field(default_factory=set)
    first_seen: float = field(default_factory=time.monotonic)
    last_event: float = field(default_factory=time.monotonic)
    early: tuple[str, asyncio.Task[tuple[LookupResult | None, bool]]] | None = None  # number, lookup
    inbox: asyncio.Queue[CallEvent] = field(default_factory=asyncio.Queue)
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)  # (agent, kind) -> messages so far
    worker: asyncio.Task[None] | None = None
    ended: bool = False

    @property
    def internal(self) -> bool:
        return self.direction == "internal"
